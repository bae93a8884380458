"""Read stream keys from CSV files, text files, stdin and ``--key``.

Rows are streamed, never loaded whole. :func:`iter_rows` yields a
:class:`KeyRow` for every valid row and an :class:`~revoker.errors.InputError`
for every bad one, so callers can validate everything before the first
request and then read the sources again to plan.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import stat
import sys
import tempfile
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any, cast

from revoker.engine.input.scanners import iter_findings
from revoker.engine.matching import parse_push_url, streamid_key
from revoker.errors import InputError, UsageError
from revoker.models import key_hint, parse_regions

MAX_KEY_LENGTH = 1024
ALLOW_NON_ASCII_FLAG = "--allow-non-ascii-keys"
BOM = "\ufeff"
_APP_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_FORBIDDEN_IN_KEY = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")
# Lone surrogates: argv bytes that are not UTF-8 (surrogateescape); unencodable.
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class KeyRow:
    """One valid input row."""

    key: str
    app_id: str
    regions: tuple[str, ...]
    source: str
    line: int


class Source:
    """One input: a file path, ``-`` (stdin) or --key values.

    ``scanner`` names the report format of a file (``--from``); ``rules`` keeps
    only that report's findings of those rules.

    stdin and anything that is not a regular file (a pipe, ``<(...)``) are
    spooled to a private temporary file as bytes, so they can be read twice
    (validation, then planning) and decoded strictly like any file.
    """

    def __init__(
        self,
        name: str,
        *,
        keys: tuple[str, ...] = (),
        stdin: IO[str] | None = None,
        scanner: str | None = None,
        rules: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self._keys = keys
        self.scanner = scanner
        self.rules = rules
        self.rules_left_out: set[str] = set()  # rule names of findings --rule left out
        self._spool: IO[bytes] | None = None
        self._error: OSError | None = None
        if name == "-":
            self._spool_from(_binary(stdin if stdin is not None else sys.stdin))
        elif name != "--key":
            try:
                if not stat.S_ISREG(os.stat(name).st_mode):
                    with open(name, "rb") as stream:
                        self._spool_from(stream)
            except OSError as exc:
                self._error = exc

    def _spool_from(self, stream: IO[bytes]) -> None:
        self._spool = tempfile.TemporaryFile("w+b")  # noqa: SIM115 - closed by close()
        shutil.copyfileobj(stream, self._spool)
        self._spool.flush()  # readers go to the file descriptor, not this buffer

    @property
    def label(self) -> str:
        return "<stdin>" if self.name == "-" else self.name

    def open(self) -> IO[str]:
        """A fresh text stream over the whole input (UTF-8, a BOM skipped, strict)."""
        if self._error is not None:
            raise self._error
        if self._spool is not None:
            raw = io.BufferedReader(_SpoolReader(self._spool.fileno()))
            return io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        return open(self.name, encoding="utf-8-sig", newline="")

    def first_bad_utf8_line(self) -> int | None:
        """The number of the first line that is not valid UTF-8 (None if none or unreadable)."""
        try:
            if self._spool is not None:
                self._spool.seek(0)
                stream: IO[bytes] = open(os.dup(self._spool.fileno()), "rb")  # noqa: SIM115
            else:
                stream = open(self.name, "rb")  # noqa: SIM115
            with stream:
                for number, raw in enumerate(stream, start=1):
                    try:
                        raw.decode("utf-8")
                    except UnicodeDecodeError:
                        return number
        except OSError:
            return None
        return None

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()


class _SpoolReader(io.RawIOBase):
    """Reads a spool file from the start at its own offset (``pread``): two streams
    over one spool, read at once, never move each other."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._offset = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_CUR:
            offset += self._offset
        elif whence == os.SEEK_END:
            offset += os.fstat(self._fd).st_size
        self._offset = max(0, offset)
        return self._offset

    def tell(self) -> int:
        return self._offset

    def readinto(self, buffer: Any) -> int:
        data = os.pread(self._fd, len(buffer), self._offset)
        buffer[: len(data)] = data
        self._offset += len(data)
        return len(data)


def _binary(stream: IO[str]) -> IO[bytes]:
    """The bytes under a text stream (or the text re-encoded, for an in-memory one)."""
    buffer = getattr(stream, "buffer", None)
    if buffer is not None:
        return cast(IO[bytes], buffer)
    return io.BytesIO(stream.read().encode("utf-8", "surrogateescape"))


# Unicode's Default_Ignorable_Code_Point ranges (DerivedCoreProperties.txt; the
# standard library has no accessor) and the blank "filler" letters that render as
# nothing: each looks like no character at all.
_IGNORABLE = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x2800, 0x2800),  # braille pattern blank
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)


def _invisible(char: str) -> bool:
    """Format, unassigned, private use, default-ignorable or a blank filler."""
    if unicodedata.category(char) in ("Cf", "Cn", "Co"):
        return True
    code = ord(char)
    return any(low <= code <= high for low, high in _IGNORABLE)


def _odd_character(key: str, allow_non_ascii: bool) -> str | None:
    """The first character of ``key`` outside printable ASCII, described; None if none.

    Invisible characters (format, unassigned, private use, default-ignorable and
    fillers: zero-width spaces, a BOM, bidi overrides, variation selectors, the
    Hangul filler U+3164) are refused even with ``allow_non_ascii``: they make a
    different key that looks the same, which the API answers "not found".
    """
    if key.isascii():
        return None  # whitespace and control characters are checked before
    for column, char in enumerate(key, start=1):
        if char.isascii():
            continue
        category = unicodedata.category(char)
        if _invisible(char):
            what = "invisible character"
        elif allow_non_ascii:
            continue
        elif category.startswith("M"):
            what = "combining character"
        else:
            what = "non-ASCII character"
        reason = f"{what} U+{ord(char):04X} at column {column}"
        if what != "invisible character":
            reason += f" ({ALLOW_NON_ASCII_FLAG} if the key really has it)"
        return reason
    return None


def check_key(key: str, *, allow_non_ascii: bool = False) -> str | None:
    """Why ``key`` cannot be a stream key, or None if it can.

    Only printable ASCII unless ``allow_non_ascii`` (then invisible characters
    are still refused); the column counts from the key's first character.
    """
    if not key:
        return "empty stream key"
    bad = _FORBIDDEN_IN_KEY.search(key)
    if bad:
        what = "whitespace" if bad.group().isspace() else "a control character"
        return f"stream key contains {what} at position {bad.start() + 1}"
    bad = _SURROGATE.search(key)
    if bad:
        return f"stream key is not valid UTF-8 at position {bad.start() + 1}"
    odd = _odd_character(key, allow_non_ascii)
    if odd:
        return odd
    if len(key) > MAX_KEY_LENGTH:
        return f"stream key longer than {MAX_KEY_LENGTH} characters"
    if key in (".", ".."):
        # A dot segment: HTTP stacks (yarl, proxies) may normalise even its encoded
        # form (%2E%2E) away, and the request would land on another endpoint.
        return f"stream key {key!r} is a path dot segment, never a valid key"
    return None


_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]{0,15})://")
# A push URL without its scheme, as the online-streams list writes it: a dotted host
# (a port allowed), then a path.
_HOST_PATH = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+(?::[0-9]{1,5})?/")
# NAME=VALUE as in a dotenv file or a shell (optionally exported, the value quoted);
# a value starting with "=" is base64 padding ("abc=="), not an assignment.
_ASSIGNMENT = re.compile(r"(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]{0,63})\s*=\s*([^=\s].*)", re.S)
_STREAMID = re.compile(r"[?&]streamid=", re.I)
_PLACEHOLDER = re.compile(r"[\[(<{*]*redacted[\])>}*]*", re.I)
_MASKED = re.compile(r"\*{3,}")
# How revoker itself prints a key (models.key_hint): 4 characters, "...", 3 characters.
_HINT = re.compile(r".{4}\.\.\..{3}", re.S)
# Nothing any shape below looks for ("://", "/", "?", "&", "#", "=", "*", "..."):
# the usual key is this, and only the bare word "redacted" among them is a shape.
_PLAIN = re.compile(r"[A-Za-z0-9_~-]+")


def _named(found: str | None) -> str:
    if not found:
        return "no stream key found in it"
    return f"the key in it is {key_hint(found)}: give that key alone"


def _push_key(text: str) -> str | None:
    """The likeliest key a URL names: its shortest candidate (the last path segment
    rather than the whole tail after the host)."""
    keys = parse_push_url(text).keys
    return min(keys, key=lambda key: (len(key), key)) if keys else None


def check_shape(value: str) -> str | None:
    """Why ``value`` is something that holds or hides a key rather than a key, named by
    its shape and never by its text; None if it may be a key.

    A URL or a push URL (the key named through :mod:`revoker.engine.matching`), an
    SRT stream ID, a ``NAME=VALUE`` assignment, and the placeholders scanners and chat
    tools put where a key was (``REDACTED``, ``***``, a value cut off with ``...``):
    each would be answered "not found" while the real key stays live.
    """
    if _PLAIN.fullmatch(value) and value.lower() != "redacted":
        return None
    text = value.strip()
    scheme = _SCHEME.match(text)
    if scheme:
        return (
            f"a URL ({scheme.group(1).lower()}://...), not a stream key: {_named(_push_key(text))}"
        )
    if _HOST_PATH.match(text):
        return f"a push URL (host/.../key), not a stream key: {_named(_push_key(text))}"
    streamid = _STREAMID.search(text)
    if text.startswith("#!::") or "?h=" in text or streamid:
        found = streamid_key(text[streamid.end() :] if streamid else text)
        return f"an SRT stream ID, not a stream key: {_named(found)}"
    assignment = _ASSIGNMENT.fullmatch(text)
    if assignment:
        name, rest = assignment.groups()
        rest = rest.strip().strip("'\"")
        shape = f"a NAME=VALUE assignment ({name[:40]}=...), not a stream key"
        inner = check_shape(rest)
        if inner:
            return f"{shape}; its value is {inner}"
        return f"{shape}: its value is {key_hint(rest)}: give that value alone"
    if _PLACEHOLDER.fullmatch(text):
        return "a placeholder (REDACTED), not a stream key: the key was redacted out of this input"
    if _MASKED.search(text):
        return "a masked value (a run of '*'), not a stream key: the key was hidden in this input"
    if text.endswith(("...", "\u2026")):
        return "a value cut off with '...', not a stream key: the key was truncated in this input"
    if _HINT.fullmatch(text):
        return "a key hint (abcd...xyz, as revoker prints keys), not a stream key"
    return None


def check_app_id(app_id: str) -> str | None:
    if not _APP_ID.fullmatch(app_id):
        return f"invalid app ID {app_id[:40]!r} (letters, digits, '-' and '_' only)"
    return None


@dataclass(frozen=True, slots=True)
class RowPolicy:
    """How rows are checked: the app ID for rows without one, and which keys pass."""

    default_app: str | None = None
    allow_non_ascii: bool = False


def _make_row(
    label: str, line: int, key: str, app_id: str | None, regions_cell: str, policy: RowPolicy
) -> KeyRow | InputError:
    reason = check_shape(key) or check_key(key, allow_non_ascii=policy.allow_non_ascii)
    if reason:
        return InputError(label, line, reason)
    app = app_id or policy.default_app
    if not app:
        return InputError(label, line, "no app ID: add an app_id column or give --app-id")
    reason = check_app_id(app)
    if reason:
        return InputError(label, line, reason)
    try:
        regions = parse_regions(regions_cell)
    except UsageError as exc:
        return InputError(label, line, str(exc))
    return KeyRow(key, app, regions, label, line)


_BOM_LINE = "UTF-8 byte order mark (U+FEFF) at the start of the line (files joined together?)"
_KNOWN_COLUMNS = ("stream_key", "app_id", "regions")


def _iter_csv(label: str, stream: IO[str], policy: RowPolicy) -> Iterator[KeyRow | InputError]:
    reader = csv.reader(stream, strict=True)
    header: list[str] | None = None
    start = 1
    try:
        for record in reader:
            line = start
            start = reader.line_num + 1
            if header is None:
                if not any(cell.strip() for cell in record):
                    continue  # blank lines before the header
                header = [h.strip().lower() for h in record]
                if "stream_key" not in header:
                    yield InputError(label, line, "CSV header has no 'stream_key' column")
                    return
                twice = [c for c in _KNOWN_COLUMNS if header.count(c) > 1]
                if twice:
                    yield InputError(
                        label, line, f"CSV header has {header.count(twice[0])} {twice[0]!r} columns"
                    )
                    return
                key_col = header.index("stream_key")
                app_col = header.index("app_id") if "app_id" in header else None
                reg_col = header.index("regions") if "regions" in header else None
                continue
            if not record or all(not cell.strip() for cell in record):
                continue
            if record[0].startswith(BOM):
                yield InputError(label, line, _BOM_LINE)
                continue
            if len(record) > len(header):
                yield InputError(
                    label, line, f"{len(record)} fields but the header has {len(header)}"
                )
                continue
            record += [""] * (len(header) - len(record))
            yield _make_row(
                label,
                line,
                record[key_col].strip(),
                record[app_col].strip() if app_col is not None else None,
                record[reg_col] if reg_col is not None else "",
                policy,
            )
    except csv.Error as exc:
        yield InputError(label, start, f"malformed CSV ({exc})")
    if header is None:
        yield InputError(label, 1, "empty file: no CSV header")


def _iter_text(
    label: str, lines: Iterator[str], first_line: int, policy: RowPolicy
) -> Iterator[KeyRow | InputError]:
    for number, raw in enumerate(lines, start=first_line):
        if raw.startswith(BOM):
            yield InputError(label, number, _BOM_LINE)
            continue
        text = raw.rstrip("\r\n").strip()
        if not text or text.startswith("#"):
            continue
        if "," in text and not check_shape(text):  # a URL's comma is the URL's
            yield InputError(
                label, number, "a comma in a plain-text key: a CSV file needs a stream_key header"
            )
            continue
        yield _make_row(label, number, text, None, "", policy)


def _looks_like_csv_header(line: str) -> bool:
    return "stream_key" in [c.strip().strip('"').lower() for c in line.split(",")]


def iter_source(
    source: Source, default_app: str | None, *, allow_non_ascii: bool = False
) -> Iterator[KeyRow | InputError]:
    """Rows of one source; I/O and encoding errors become InputErrors with the line."""
    policy = RowPolicy(default_app, allow_non_ascii)
    label = source.label
    if source.name == "--key":
        for index, key in enumerate(source._keys, start=1):
            yield _make_row("--key", index, key, None, "", policy)
        return
    line = 1
    try:
        stream = source.open()
    except OSError as exc:
        yield InputError(label, 1, f"cannot read file ({exc.strerror or exc})")
        return
    try:
        if source.scanner:
            findings = iter_findings(
                label, stream, source.scanner, source.rules, source.rules_left_out
            )
            for line, secret in findings:
                yield _make_row(label, line, secret, None, "", policy)
            return
        first = ""
        for first in stream:  # the first non-blank line decides: CSV header or text
            if first.strip():
                break
        if _looks_like_csv_header(first) or (label.lower().endswith(".csv") and first.strip()):
            stream.seek(0)
            for row in _iter_csv(label, stream, policy):
                line = row.line
                yield row
        else:
            stream.seek(0)
            for row in _iter_text(label, stream, 1, policy):
                line = row.line
                yield row
    except UnicodeDecodeError:
        # The decoder reads ahead in blocks: the line is found in the bytes.
        yield InputError(label, source.first_bad_utf8_line() or line, "not valid UTF-8")
    except OSError as exc:
        yield InputError(label, line + 1, f"cannot read file ({exc.strerror or exc})")
    finally:
        stream.close()


def iter_rows(
    sources: list[Source], default_app: str | None, *, allow_non_ascii: bool = False
) -> Iterator[KeyRow | InputError]:
    """Rows of every source in order."""
    for source in sources:
        yield from iter_source(source, default_app, allow_non_ascii=allow_non_ascii)


def open_sources(
    paths: tuple[str, ...],
    keys: tuple[str, ...],
    stdin: IO[str] | None = None,
    scanner: str | None = None,
    rules: tuple[str, ...] = (),
) -> list[Source]:
    """Sources for the given paths (``-`` = stdin; scanner reports with ``scanner``)
    and ``--key`` values."""
    sources = [Source(p, stdin=stdin, scanner=scanner, rules=rules) for p in paths]
    if keys:
        sources.append(Source("--key", keys=keys))
    return sources
