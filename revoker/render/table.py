"""The aligned text table every text output uses (summary, show, streams, report)."""

from __future__ import annotations

from collections.abc import Iterable

from revoker.redact import printable


def table(rows: Iterable[list[str]], *, numeric: bool = True) -> list[str]:
    """Aligned columns: the first left, the rest right (``numeric``) or left.

    Cells pass the one escaper first (a server's text may hold terminal escapes),
    so the columns are aligned on what is printed.
    """
    rows = [[printable(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.rjust(w) if numeric and i else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
