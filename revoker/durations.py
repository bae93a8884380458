"""Durations on the command line: ``90d``, ``12h``, ``30min``, ``45s``, ``2w``, ``6mo``, ``1d12h``.

Minutes are ``min`` and months ``mo`` (30 days): a bare ``m`` is refused, since
``--older-than 3m`` reads as three months as easily as three minutes.
"""

from __future__ import annotations

import re

from revoker.errors import UsageError

UNITS = {"s": 1, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "mo": 30 * 86400}
# Longer than any key has existed; past it, time arithmetic overflows (a float's range).
MAX_DURATION = 100 * 365 * 86400
_PART = re.compile(r"(\d+)(min|mo|m|s|h|d|w)")


def parse_duration(text: str) -> int:
    """Seconds in ``text`` (one or more ``<int><unit>`` parts); UsageError if malformed."""
    value = text.strip().lower()
    if re.search(r"\d{13}", value):  # not echoed: it may be hundreds of digits long
        raise UsageError(f"invalid duration: at most 100 years ({MAX_DURATION // 86400}d)")
    parts = _PART.findall(value)
    if not value or "".join(n + u for n, u in parts) != value:
        raise UsageError(
            f"invalid duration {text!r}: use an integer and a unit s, min, h, d, w or mo "
            "(30 days), e.g. 90d, 12h, 30min, 6mo, 1d12h"
        )
    if any(unit == "m" for _, unit in parts):
        raise UsageError(
            f"invalid duration {text!r}: 'm' is ambiguous; write 'min' for minutes "
            "or 'mo' for months (30 days)"
        )
    seconds = sum(int(n) * UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise UsageError(f"invalid duration {text!r}: must be more than zero")
    if seconds > MAX_DURATION:
        raise UsageError(f"invalid duration {text!r}: at most 100 years ({MAX_DURATION // 86400}d)")
    return seconds


def format_duration(seconds: int) -> str:
    """The shortest ``parse_duration`` spelling of ``seconds`` (``86400`` -> ``1d``)."""
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if seconds >= size:
            out.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(out) or "0s"
