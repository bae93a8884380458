"""Stop signals: the first one halts the run gracefully, a second one acts as usual."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator

from revoker.engine.sched.pool import Halt
from revoker.logs import log
from revoker.results import HaltReason

# SIGHUP too: a closed terminal or a dropped ssh session must stop a run as
# gracefully as SIGTERM, not kill it with DELETEs unrecorded.
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


@contextlib.contextmanager
def stop_on_signals(halt: Halt, *, install: bool = True) -> Iterator[None]:
    """While inside, a stop signal trips ``halt`` (in-flight requests finish, the
    rest is recorded); a second signal gets the default action. Outside the main
    thread (or with ``install`` False) nothing is installed."""
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    if install:
        for sig in STOP_SIGNALS:
            try:
                loop.add_signal_handler(sig, _on_signal, loop, halt, sig)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
                pass
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def _on_signal(loop: asyncio.AbstractEventLoop, halt: Halt, sig: signal.Signals) -> None:
    """First signal: finish in-flight requests, record the rest. Second: default action."""
    log.warning("signal received: finishing in-flight requests", signal=sig.name)
    halt.trip(HaltReason.INTERRUPTED)
    for stop in STOP_SIGNALS:
        loop.remove_signal_handler(stop)
