"""JSON from files and servers, parsed so that its nesting cannot crash the process.

``json`` recurses once per nesting level: ``[[[[...]]]]`` 100,000 deep raises
``RecursionError``, which is not a ``ValueError`` and escapes every handler for
malformed input. :func:`loads` turns it into :class:`NestedTooDeep` (a
``ValueError``), and :func:`deep_line` finds the line to name in the error.
"""

from __future__ import annotations

import json
from typing import Any

# Far deeper than any audit line, API answer or scanner finding; far shallower than
# the nesting at which the parser runs out of stack.
MAX_DEPTH = 200


class NestedTooDeep(ValueError):
    """JSON nested deeper than the parser can follow."""


def loads(data: str | bytes) -> Any:
    """``json.loads``, with too deep a nesting raised as :class:`NestedTooDeep`."""
    try:
        return json.loads(data)
    except RecursionError:
        raise NestedTooDeep("JSON nested too deep to parse") from None


def deep_line(text: str, limit: int = MAX_DEPTH) -> int:
    """The 1-based line at which ``text``'s nesting first passes ``limit`` (1 if never).

    Brackets inside strings do not count. Only called once a parse has failed.
    """
    depth, line, in_string, escaped = 0, 1, False, False
    for char in text:
        if char == "\n":
            line += 1
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return line
        elif char in "]}":
            depth -= 1
    return 1
