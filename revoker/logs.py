"""structlog set-up: logs go to stderr, console on a TTY, JSON otherwise."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog

from revoker.redact import redact as blank_secrets

_SECRETS: set[str] = set()


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
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redactor(secrets),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
