"""click parameter types shared by the revoker CLI and the emulator's CLI.

Only ``revoker.cli`` and ``revoker.emulator.command`` import this: the core
never imports click.
"""

from __future__ import annotations

import math
from typing import Any

import click


class FiniteFloatRange(click.FloatRange):
    """A FloatRange that also refuses ``nan`` and ``inf`` (every comparison with nan is false)."""

    name = "float range"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number
