"""The aligned text table every text output uses (summary, show, streams, report)."""

from __future__ import annotations

from collections.abc import Iterable


def table(rows: Iterable[list[str]], *, numeric: bool = True) -> list[str]:
    """Aligned columns: the first left, the rest right (``numeric``) or left."""
    rows = list(rows)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.rjust(w) if numeric and i else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
