"""The one redactor: every string a server sends passes here before it is recorded or shown.

A hostile or buggy server can echo the Basic token, the customer secret or the
plain key (in a message, in ``X-Request-ID``), and can put terminal escapes in
its text. :func:`redact` blanks secrets; :func:`server_text` also escapes
control characters; :func:`server_request_id` keeps only a short ID of safe
characters. :func:`printable` is applied again to text printed for people (old
audit logs were written before these rules).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

MASK = "***"
REQUEST_ID_MAX = 128
_REQUEST_ID = re.compile(rf"[A-Za-z0-9._:-]{{1,{REQUEST_ID_MAX}}}")
INVALID_REQUEST_ID = "(invalid)"


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every (non-empty) secret replaced by ``***``."""
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, MASK)
    return text


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text: str) -> str:
    """Control, format and separator characters (ANSI escapes, newlines, U+202E) as ``\\xNN``."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else _escape(c) for c in text)


def printable_lines(text: str) -> str:
    """Text for a terminal: each line through :func:`printable`, the line breaks kept."""
    return "\n".join(printable(line) for line in text.split("\n"))


def markdown_cell(value: object) -> str:
    """``value`` as literal text in a GitHub table cell: no markup, links or HTML from it."""
    text = printable("" if value is None else str(value))
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("`", "'")
    text = text.replace("[", "\\[").replace("]", "\\]")
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def server_text(text: str, secrets: Iterable[str]) -> str:
    """A server's message: secrets blanked, control characters escaped."""
    return printable(redact(text, secrets))


def server_data(value: Any, secrets: Iterable[str]) -> Any:
    """A server's ``data`` (JSON) with every string value in it through :func:`redact`.

    Only secrets are blanked: stream URLs keep their exact text, the key in them
    is what matching looks for. Walked without recursion, however deep the JSON.
    """
    secrets = tuple(s for s in secrets if s)
    if not secrets:
        return value
    root: list[Any] = [value]
    stack: list[tuple[list[Any] | dict[Any, Any], Any]] = [(root, 0)]
    while stack:
        holder, slot = stack.pop()
        item = holder[slot]
        if isinstance(item, str):
            holder[slot] = redact(item, secrets)
        elif isinstance(item, dict):
            copy = dict(item)
            holder[slot] = copy
            stack.extend((copy, name) for name in copy)
        elif isinstance(item, list):
            copy_list = list(item)
            holder[slot] = copy_list
            stack.extend((copy_list, index) for index in range(len(copy_list)))
    return root[0]


def server_request_id(value: str | None, secrets: Iterable[str]) -> str | None:
    """An echoed request ID if it is short and made of safe characters and holds no secret.

    Anything else is replaced (``***`` if it held a secret, ``(invalid)`` otherwise),
    so the record still shows that the server sent something.
    """
    if value is None or value in (MASK, INVALID_REQUEST_ID):
        return value
    if redact(value, secrets) != value:
        return MASK
    return value if _REQUEST_ID.fullmatch(value) else INVALID_REQUEST_ID
