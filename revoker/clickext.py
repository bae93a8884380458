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


class RateRange(FiniteFloatRange):
    """A rate: 0 (no cap) or between ``min_rate`` and ``max``; a tiny positive rate
    would wait a lifetime between two requests."""

    def __init__(self, min_rate: float, max: float) -> None:
        super().__init__(min=0, max=max)
        self.min_rate = min_rate

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if 0 < number < self.min_rate:
            self.fail(f"{value!r} is not 0 (no cap) or at least {self.min_rate}.", param, ctx)
        return number
