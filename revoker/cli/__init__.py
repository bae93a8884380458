"""The command line: the ``revoker`` group and the one place where results and
errors become exit codes.

The commands live in :mod:`revoker.cli.bulk` (runs that write an audit log) and
:mod:`revoker.cli.ops` (the others); each returns its exit code or raises a
RevokerError, and :class:`RevokerGroup` exits with it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from typing import Any, TextIO

import click

from revoker import __version__
from revoker.cli import bulk, ops
from revoker.cli.output import error
from revoker.clickext import FiniteFloatRange
from revoker.emulator.command import emulator
from revoker.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, RevokerError

ARGV = "revoker.argv"


class RevokerGroup(click.Group):
    """Exits with the command's returned code; a RevokerError becomes a one-line
    message and its exit code."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # The arguments as given: a summary's next steps repeat them (plus --resume).
        ctx.meta.setdefault(ARGV, list(args))
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            # Click hands back the subcommand's return value: its exit code.
            code = super().invoke(ctx)
        except RevokerError as exc:
            error(ctx, str(exc), exit_code=exc.exit_code)
            code = exc.exit_code
        except click.ClickException as exc:
            if not _json_errors(ctx):
                raise  # click prints its usage error with the command's usage line
            error(ctx, exc.format_message(), exit_code=exc.exit_code)
            code = exc.exit_code
        except KeyboardInterrupt:
            if _json_errors(ctx):
                error(ctx, "interrupted", exit_code=EXIT_INTERRUPTED)
            else:
                click.echo("revoker: interrupted", err=True)
            code = EXIT_INTERRUPTED
        # A command of click's own (the emulator) returns nothing when it ends well.
        ctx.exit(EXIT_OK if code is None else code)


def _json_errors(ctx: click.Context) -> bool:
    return isinstance(ctx.obj, dict) and bool(ctx.obj.get("json_errors"))


@click.group(cls=RevokerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="revoker")
@click.option(
    "--log-format",
    type=click.Choice(["auto", "console", "json"]),
    default="auto",
    envvar="REVOKER_LOG_FORMAT",
    show_envvar=True,
    show_default=True,
    help="Logs on stderr: console on a TTY, JSON otherwise.",
)
@click.option("-v", "--verbose", count=True, help="More logging (repeatable).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors on stderr.")
@click.option(
    "--no-color",
    is_flag=True,
    help="No colour on stderr (also: NO_COLOR set to anything); progress stays.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bars on stderr. Default: on when stderr is a terminal and not -q; "
    "elsewhere a progress log line every --progress-interval seconds.",
)
@click.option(
    "--progress-interval",
    type=FiniteFloatRange(min=0),
    default=30.0,
    show_default=True,
    envvar="REVOKER_PROGRESS_INTERVAL",
    show_envvar=True,
    metavar="SECONDS",
    help="Off a terminal: seconds between progress log lines (0 = none).",
)
@click.pass_context
def main(
    ctx: click.Context,
    log_format: str,
    verbose: int,
    quiet: bool,
    no_color: bool,
    progress: bool | None,
    progress_interval: float,
) -> None:
    """Revoke Agora Media Gateway streaming keys in every region, with an audit trail.

    Logs and progress go to stderr, summaries to stdout. -v logs each failure,
    retry and 429 with its request ID; -vv every request; -q only warnings and
    errors.
    """
    from revoker.logs import configure, disable_color

    if no_color:
        disable_color()
    secrets = [os.environ.get("AGORA_CUSTOMER_SECRET", "")]
    configure(log_format, -1 if quiet else verbose, secrets=secrets)
    ctx.obj = {
        "quiet": quiet,
        "progress": progress,
        "progress_interval": progress_interval,
        # Asked for by name (flag or $REVOKER_LOG_FORMAT), not picked by auto off a TTY.
        "json_errors": log_format == "json",
    }


for _command in (*bulk.COMMANDS, *ops.COMMANDS, emulator):
    main.add_command(_command)


_OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EIO, errno.EPIPE})


def run() -> None:
    """Console-script entry point."""
    try:
        main(prog_name="revoker")
    except KeyboardInterrupt:  # pragma: no cover - outside click's handling
        sys.exit(EXIT_INTERRUPTED)
    except OSError as exc:
        # What click prints itself (--help, usage, --version) on a stdout that refuses
        # it (a full device): commands turn their own errors into exit codes.
        if exc.errno not in _OUTPUT_ERRNOS:
            raise
        _silence(sys.stdout)
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write(f"revoker: error: cannot write to stdout ({exc.strerror or exc})\n")
            sys.stderr.flush()
        sys.exit(EXIT_USAGE)


def _silence(stream: TextIO) -> None:
    """Point ``stream`` at /dev/null, so the flush at exit cannot fail again."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, stream.fileno())
        finally:
            os.close(devnull)


if __name__ == "__main__":  # pragma: no cover
    run()

__all__ = ["EXIT_USAGE", "main", "run"]
