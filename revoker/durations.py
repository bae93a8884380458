"""Durations on the command line: ``90d``, ``12h``, ``30m``, ``45s``, ``2w``, ``1d12h``."""

from __future__ import annotations

import re

from revoker.errors import UsageError

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d+)([smhdw])")


def parse_duration(text: str) -> int:
    """Seconds in ``text`` (one or more ``<int><unit>`` parts); UsageError if malformed."""
    value = text.strip().lower()
    parts = _PART.findall(value)
    if not value or "".join(n + u for n, u in parts) != value:
        raise UsageError(
            f"invalid duration {text!r}: use an integer and a unit s, m, h, d or w "
            "(e.g. 90d, 12h, 30m, 1d12h)"
        )
    seconds = sum(int(n) * UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise UsageError(f"invalid duration {text!r}: must be more than zero")
    return seconds


def format_duration(seconds: int) -> str:
    """The shortest ``parse_duration`` spelling of ``seconds`` (``86400`` -> ``1d``)."""
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            out.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(out) or "0s"
