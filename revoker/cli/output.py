"""Printing for the commands: stdout and stderr that may be gone or full, and the
choice of progress display."""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING

import click

from revoker.errors import OutputError
from revoker.redact import printable_lines

if TYPE_CHECKING:
    from revoker.cli.progress import RunDisplay

# The reader went away (a closed pipe, `| head`, quitting `less`) or the terminal hung up.
_READER_GONE = frozenset({errno.EPIPE, errno.EIO})


def emit(text: str, *, work_done: bool = False, err: bool = False, nl: bool = True) -> None:
    """Print to stdout (or stderr). A reader that went away is silenced, so the exit
    code stays the run's; a stdout that cannot take the text (a full device) is an
    :class:`OutputError`, never a traceback."""
    stream = sys.stderr if err else sys.stdout
    if not text.isascii():
        # A lone surrogate (from a forged log's "\\ud800") cannot be encoded: shown escaped.
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    try:
        click.echo(text, err=err, nl=nl)
        stream.flush()
    except OSError as exc:
        # Point the stream at /dev/null, so the flush at exit cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, stream.fileno())
        except (OSError, ValueError):
            pass
        finally:
            os.close(devnull)
        if err or exc.errno in _READER_GONE:
            return
        where = "the audit log has the results" if work_done else "nothing was sent"
        raise OutputError(
            f"cannot write to stdout ({exc.strerror or exc}); {where}", work_done=work_done
        ) from None


def error(ctx: click.Context | None, text: str, **fields: object) -> None:
    """``revoker: error: TEXT`` on stderr, shown even with -q; a JSON log line (same
    text, so a grep for ``revoker: error`` finds both) under ``--log-format json``."""
    line = f"revoker: error: {printable_lines(text)}"
    root = ctx.find_root() if ctx is not None else None
    if root is not None and isinstance(root.obj, dict) and root.obj.get("json_errors"):
        import structlog

        structlog.get_logger("revoker").error(line, **fields)
        return
    click.echo(line, err=True)


def progress_display(ctx: click.Context) -> RunDisplay:
    """The run's progress display: bars when stderr is a terminal and not -q (whatever
    NO_COLOR says), else the periodic log line; --progress/--no-progress decide first."""
    from revoker.cli.progress import RunDisplay

    wanted = ctx.obj.get("progress")
    quiet = ctx.obj.get("quiet", False)
    bars = wanted if wanted is not None else (not quiet and _stderr_is_terminal())
    # The periodic line is an info line: -q would filter it anyway.
    interval = None if wanted is False or quiet else ctx.obj.get("progress_interval")
    return RunDisplay(bars=bars, interval=interval)


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (OSError, ValueError):
        return False


def skipped_rows(invalid: Iterable[object]) -> None:
    """Name each invalid input row a --skip-invalid run leaves out."""
    for error in invalid:
        click.echo(f"revoker: skipped invalid row: {error}", err=True)
