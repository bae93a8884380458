"""structlog set-up: logs go to stderr, console on a TTY, JSON otherwise."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog

from revoker.redact import redact as blank_secrets

_SECRETS: set[str] = set()
_COLOR_OFF = False


def disable_color() -> None:
    """``--no-color``: no ANSI colour and no redrawn progress line, for the whole process."""
    global _COLOR_OFF
    _COLOR_OFF = True


def use_color(stream: TextIO) -> bool:
    """Colour and terminal drawing only on a TTY, and never with ``--no-color`` or a
    non-empty ``NO_COLOR`` (https://no-color.org)."""
    return not _COLOR_OFF and not os.environ.get("NO_COLOR") and stream.isatty()


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

    def __init__(self, stream: TextIO) -> None:
        self._stream: TextIO | None = stream

    def write(self, text: str) -> int:
        if self._stream is not None:
            try:
                self._stream.write(text)
            except (OSError, ValueError):  # EPIPE, EIO, or a closed file
                self._stream = None
        return len(text)

    def flush(self) -> None:
        if self._stream is not None:
            try:
                self._stream.flush()
            except (OSError, ValueError):
                self._stream = None

    def isatty(self) -> bool:
        return self._stream is not None and self._stream.isatty()


def configure(
    fmt: str = "auto",
    verbosity: int = 0,
    stream: TextIO | None = None,
    secrets: Iterable[str] = (),
) -> None:
    """Configure structlog once per process. ``verbosity``: -1 quiet, 0 info, 1+ debug."""
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    level = logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO
    renderer: structlog.types.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=use_color(stream))
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redactor(secrets),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=QuietStream(stream)),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
