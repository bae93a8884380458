"""click helpers shared by the commands (the core never imports click)."""

from __future__ import annotations

import math
import os
import sys
from typing import Any

import click

from revoker.errors import OutputError


class FiniteFloatRange(click.FloatRange):
    """A FloatRange that also refuses ``nan`` and ``inf`` (every comparison with nan is false)."""

    name = "float range"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


def emit(text: str, *, work_done: bool, nl: bool = True) -> None:
    """Print to stdout; a stdout that cannot be written is an :class:`OutputError`, no traceback."""
    try:
        click.echo(text, nl=nl)
        sys.stdout.flush()
    except OSError as exc:
        # Later flushes (at exit) would fail the same way and print a traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        where = "the audit log has the results" if work_done else "nothing was sent"
        raise OutputError(
            f"cannot write to stdout ({exc.strerror or exc}); {where}", work_done=work_done
        ) from None
