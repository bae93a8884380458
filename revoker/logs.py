"""structlog set-up: logs go to stderr, console on a TTY, JSON otherwise."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, Protocol, TextIO

from revoker.redact import redact as blank_secrets

# structlog imports rich, when it is installed, for tracebacks that revoker never
# draws: exceptions reach a line as text (format_exc_info), before any renderer.
# rich is a large part of a run's start-up; the progress bars load it themselves.
# So structlog is loaded with rich hidden, and every module logs through ``log``.
_HIDE_RICH = "rich" not in sys.modules and "structlog" not in sys.modules
if _HIDE_RICH:
    sys.modules["rich"] = None  # type: ignore[assignment]  # "import rich" fails
try:
    import structlog
finally:
    if _HIDE_RICH:
        del sys.modules["rich"]

log = structlog.get_logger("revoker")

_SECRETS: set[str] = set()
_COLOR_OFF = False
_VERBOSITY = 0
_FORMAT = "console"


def verbosity() -> int:
    """-1 with -q, 0 by default, 1 with -v (failures, retries, 429s), 2 with -vv (requests)."""
    return _VERBOSITY


def log_format() -> str:
    """The resolved format of stderr's lines: ``console`` or ``json``."""
    return _FORMAT


def disable_color() -> None:
    """``--no-color``: no ANSI colour, for the whole process (progress stays)."""
    global _COLOR_OFF
    _COLOR_OFF = True


class _Terminal(Protocol):
    def isatty(self) -> bool: ...


def color_allowed() -> bool:
    """False with ``--no-color`` or a non-empty ``NO_COLOR`` (https://no-color.org)."""
    return not _COLOR_OFF and not os.environ.get("NO_COLOR")


def use_color(stream: _Terminal) -> bool:
    """Colour only on a TTY, and never with ``--no-color`` or a non-empty ``NO_COLOR``
    (which turn colour off, not the progress display)."""
    return color_allowed() and stream.isatty()


def add_secret(value: str) -> None:
    """From now on, blank ``value`` wherever it appears in a log event."""
    if value:
        _SECRETS.add(value)


def redactor(secrets: Iterable[str] = ()) -> structlog.types.Processor:
    """A processor that blanks every registered secret wherever it appears in an event."""
    for secret in secrets:
        add_secret(secret)

    def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        if not _SECRETS:
            return event
        for name, value in event.items():
            if isinstance(value, str):
                event[name] = blank_secrets(value, _SECRETS)
        return event

    return redact


class QuietStream:
    """A log stream that falls silent, instead of raising, once writing to it fails.

    stderr may be a pipe whose reader has gone (``2>&1 | head``, quitting
    ``less``): a log line must never be what stops a run, its signal handling
    or its audit records.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        # None: whatever sys.stderr is at each write, so a progress display that
        # takes over stderr while it is drawn prints log lines above itself.
        self._fixed = stream
        self._failed = False

    @property
    def _stream(self) -> TextIO | None:
        if self._failed:
            return None
        return self._fixed if self._fixed is not None else sys.stderr

    def write(self, text: str) -> int:
        stream = self._stream
        if stream is not None:
            try:
                stream.write(text)
            except (OSError, ValueError):  # EPIPE, EIO, or a closed file
                self._failed = True
        return len(text)

    def flush(self) -> None:
        stream = self._stream
        if stream is not None:
            try:
                stream.flush()
            except (OSError, ValueError):
                self._failed = True

    def isatty(self) -> bool:
        stream = self._stream
        try:
            return stream is not None and stream.isatty()
        except (OSError, ValueError):
            return False


def configure(
    fmt: str = "auto",
    verbosity: int = 0,
    stream: TextIO | None = None,
    secrets: Iterable[str] = (),
) -> None:
    """Configure structlog once per process. ``verbosity``: -1 quiet, 0 info, 1+ debug."""
    global _VERBOSITY, _FORMAT
    out = QuietStream(stream)
    if fmt == "auto":
        fmt = "console" if out.isatty() else "json"
    _VERBOSITY, _FORMAT = verbosity, fmt
    level = logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO
    renderer: structlog.types.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=use_color(out))
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redactor(secrets),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=out),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
