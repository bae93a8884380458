"""Printing for the commands: stdout and stderr that may be gone or full, and the
progress line."""

from __future__ import annotations

import errno
import os
import sys
import time
from collections.abc import Iterable

import click

from revoker.errors import OutputError
from revoker.models import Outcome, TaskResult

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


class Progress:
    """A one-line progress display on stderr (only when stderr is a TTY)."""

    def __init__(self, total: int, label: str) -> None:
        self.total = total
        self.label = label
        self.done = 0
        self.bad = 0
        self._last = 0.0

    def __call__(self, result: TaskResult) -> None:
        self.done += 1
        if result.outcome in (Outcome.FAILED, Outcome.PRESENT, Outcome.UNKNOWN):
            self.bad += 1
        now = time.monotonic()
        if now - self._last >= 0.1 or self.done >= self.total:
            self._last = now
            width = 30
            filled = int(width * self.done / max(self.total, 1))
            emit(
                f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] "
                f"{self.done}/{self.total} problems={self.bad}",
                err=True,
                nl=self.done >= self.total,
            )


def progress_line(ctx: click.Context, total: int, label: str) -> Progress | None:
    """The progress line for ``total`` tasks, or None where it would be noise."""
    from revoker.logs import use_color

    # A redrawn line is terminal drawing: off where colour is off (NO_COLOR, --no-color).
    if ctx.obj.get("quiet") or not use_color(sys.stderr):
        return None
    return Progress(total, label)


def skipped_rows(invalid: Iterable[object]) -> None:
    """Name each invalid input row a --skip-invalid run leaves out."""
    for error in invalid:
        click.echo(f"revoker: skipped invalid row: {error}", err=True)
