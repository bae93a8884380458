"""The one redactor: every string a server sends passes here before it is recorded or shown.

A hostile or buggy server can echo the Basic token, the customer secret or the
plain key (in a message, in ``X-Request-ID``), and can put terminal escapes in
its text. :func:`redact` blanks secrets; :func:`server_text` also escapes
control characters; :func:`server_request_id` keeps only a short ID of safe
characters. :func:`printable` is applied again to text printed for people (old
audit logs were written before these rules).
"""

from __future__ import annotations

import base64
import re
import string
from array import array
from bisect import bisect_left
from collections.abc import Iterable
from functools import lru_cache
from typing import Any
from urllib.parse import quote, quote_plus, unquote

MASK = "***"
REQUEST_ID_MAX = 128
_REQUEST_ID = re.compile(rf"[A-Za-z0-9._:-]{{1,{REQUEST_ID_MAX}}}")
INVALID_REQUEST_ID = "(invalid)"


# A prefix this long at the end of a cut (or truncated) text is taken as the start of a
# secret: shorter ones match ordinary words too often.
PARTIAL_MIN = 8
_HEX_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")


@lru_cache(maxsize=4096)
def _pattern(secret: str) -> re.Pattern[str] | None:
    """A pattern for a percent-encoded form whose ``%XX`` escapes match in either hex case."""
    if not _HEX_ESCAPE.search(secret):
        return None
    parts, last = [], 0
    for found in _HEX_ESCAPE.finditer(secret):
        parts.append(re.escape(secret[last : found.start()]))
        parts.append("%" + "".join(f"[{c.upper()}{c.lower()}]" for c in found.group()[1:]))
        last = found.end()
    parts.append(re.escape(secret[last:]))
    return re.compile("".join(parts))


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every (non-empty) secret replaced by ``***``.

    A percent-encoded secret matches whatever the case of its hex digits (``%2f``
    is ``%2F``): a server may re-encode what it echoes.
    """
    for secret in secrets:
        if not secret:
            continue
        pattern = _pattern(secret)
        if pattern is not None:
            text = pattern.sub(MASK, text)
        elif secret in text:
            text = text.replace(secret, MASK)
    return text


# Lower case for ASCII letters only: the length stays, so places in the text still match.
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def _mask_partial_tail(text: str, secrets: Iterable[str]) -> str:
    """``text`` whose end is the start (8+ characters) of a secret, with that start masked."""
    for secret in secrets:
        longest = min(len(secret) - 1, len(text))
        if longest < PARTIAL_MIN:
            continue
        folded = "%" in secret  # hex digits may come in either case
        tail = text[-longest:].translate(_ASCII_LOWER) if folded else text[-longest:]
        start = secret.translate(_ASCII_LOWER) if folded else secret
        # The longest such end first: the earliest place in the tail where the
        # secret's first characters stand and the rest of the tail follows them.
        head = start[:PARTIAL_MIN]
        at = tail.find(head)
        while at >= 0 and not start.startswith(tail[at:]):
            at = tail.find(head, at + 1)
        if at >= 0:
            text = text[: len(text) - longest + at] + MASK
    return text


def clip(
    text: str, limit: int | None, secrets: Iterable[str], keys: KeyDigests | None = None
) -> str:
    """``text`` redacted, then cut to ``limit`` characters, then any secret's start left
    at the end masked: a cut never splits a secret into a recorded half. With ``keys``,
    every key of theirs the kept part holds is masked too, before the cut."""
    secrets = tuple(s for s in secrets if s)
    text = redact(text, secrets)
    if keys is not None:
        text = keys.mask(text, limit)
    if limit is not None:
        text = text[:limit]
    return _mask_partial_tail(text, secrets)


_URL_SAFE = re.compile(r"[A-Za-z0-9_.~-]*")
_NOT_URL_SAFE = re.compile(r"[^A-Za-z0-9_.~-]")


def key_forms(key: str) -> tuple[str, ...]:
    """The key as sent and as decoded, longest first; a 2-letter test key must not blank
    half a message (forms under 6 characters are left out)."""
    if len(key) < 6:
        return ()
    if _URL_SAFE.fullmatch(key):  # the usual key: percent-encoding leaves it as it is
        return (key,)
    forms = {key, quote(key, safe="")}
    return tuple(sorted(forms, key=len, reverse=True))


class KeyDigests:
    """The run's keys as one 8-byte digest each (not the keys), to find them in a text.

    A request that names no key (a listing) cannot be redacted of the keys the
    usual way, by their forms: the run streams its inputs and holds no key list.
    :meth:`mask` looks at every substring as long as a key (or its percent-encoded
    form, in either hex case) and masks those whose digest is a key's. The
    digest is Python's own salted string hash: it lives only in this process,
    and a false match only masks a few characters too many.
    """

    # Digests are sorted in runs of this many, as they come: a sort of them all at once
    # would hold every one as a Python int for a moment, many times their array's size.
    RUN = 1 << 16

    def __init__(self, keys: Iterable[str] = ()) -> None:
        self._digests: array[int] = array("q")
        self._unsorted = False  # whether the last run (shorter than RUN) is out of order
        self._lengths: set[int] = set()  # of the keys as they are
        self._encoded: set[int] = set()  # of the percent-encoded forms that differ
        for key in keys:
            self.add(key)

    def add(self, key: str) -> None:
        """One key of the run (one too short for :func:`key_forms` is never masked)."""
        if len(key) < 6:
            return
        digests = self._digests
        digests.append(hash(key))
        self._lengths.add(len(key))
        if _NOT_URL_SAFE.search(key):  # cheaper than a fullmatch of the safe characters
            self._encoded.add(len(quote(key, safe="")))
        self._unsorted = True
        if len(digests) % self.RUN == 0:
            self._sort_last_run()

    def __len__(self) -> int:
        """How many digests are held (a key under two app IDs is there twice)."""
        return len(self._digests)

    def _sort_last_run(self) -> None:
        """Sort the run the last digest is in (runs start at multiples of RUN)."""
        digests = self._digests
        start = (len(digests) - 1) // self.RUN * self.RUN if digests else 0
        digests[start:] = array("q", sorted(digests[start:]))
        self._unsorted = False

    def _known(self, text: str) -> bool:
        digests = self._digests
        if self._unsorted:
            self._sort_last_run()
        digest = hash(text)
        size, run = len(digests), self.RUN
        for low in range(0, size, run):
            high = min(low + run, size)
            at = bisect_left(digests, digest, low, high)
            if at < high and digests[at] == digest:
                return True
        return False

    def holds(self, text: str) -> bool:
        """Whether ``text`` is one of the keys, as it is or percent-encoded."""
        if len(text) in self._lengths and self._known(text):
            return True
        return "%" in text and len(text) in self._encoded and self._known(unquote(text))

    def mask(self, text: str, limit: int | None = None) -> str:
        """``text`` with each key in it masked (the longest first where they overlap).

        With ``limit``, only the start that can still be kept after a cut at ``limit``
        characters is looked at: a server's long body costs no more than a short one.
        """
        if not self._digests:
            return text
        lengths = sorted(self._lengths | self._encoded, reverse=True)
        out: list[str] = []
        kept = 0
        at = 0
        end = len(text)
        while at < end and (limit is None or kept < limit):
            for length in lengths:
                if at + length <= end and self.holds(text[at : at + length]):
                    out.append(MASK)
                    kept += len(MASK)
                    at += length
                    break
            else:
                out.append(text[at])
                kept += 1
                at += 1
        out.append(text[at:])
        return "".join(out)


def secret_forms(secret: str) -> tuple[str, ...]:
    """Every form in which a server may echo ``secret``: as is, URL-encoded (path and
    form style) and base64 (standard and URL-safe, with or without padding)."""
    raw = secret.encode("utf-8")
    forms = {
        secret,
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
        base64.b64encode(raw).decode("ascii").rstrip("="),
        base64.urlsafe_b64encode(raw).decode("ascii").rstrip("="),
    }
    return tuple(f for f in sorted(forms, key=len, reverse=True) if f)


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
    # Emphasis markers: a forged name must not render as a bold verdict.
    text = text.replace("*", "\\*").replace("_", "\\_").replace("~", "\\~")
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def server_text(
    text: str,
    secrets: Iterable[str],
    limit: int | None = None,
    keys: KeyDigests | None = None,
) -> str:
    """A server's message: secrets (and ``keys``) blanked, cut to ``limit``, control
    characters escaped."""
    return printable(clip(text, limit, secrets, keys))


def server_data(value: Any, secrets: Iterable[str]) -> Any:
    """A server's ``data`` (JSON) with every string value in it through :func:`redact`.

    Only secrets are blanked: stream URLs keep their exact text, the key in them
    is what matching looks for. Walked without recursion, however deep the JSON.
    """
    if value is None or isinstance(value, int | float):
        return value
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


def server_request_id(
    value: str | None, secrets: Iterable[str], keys: KeyDigests | None = None
) -> str | None:
    """An echoed request ID if it is short and made of safe characters and holds no secret.

    Anything else is replaced (``***`` if it held a secret, ``(invalid)`` otherwise),
    so the record still shows that the server sent something.
    """
    if value is None or value in (MASK, INVALID_REQUEST_ID):
        return value
    if redact(value, secrets) != value:
        return MASK
    if not _REQUEST_ID.fullmatch(value):
        return INVALID_REQUEST_ID  # nothing of it kept: no need to look for keys
    return MASK if keys is not None and keys.mask(value) != value else value
