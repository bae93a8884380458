"""Serve the emulator app with uvicorn on a socket bound here (port 0 = a free port)."""

from __future__ import annotations

import contextlib
import signal
import socket
import sys
from collections.abc import Callable, Generator
from types import FrameType

import uvicorn

from revoker.emulator.app import create_app
from revoker.emulator.config import EmulatorConfig
from revoker.emulator.state import EmulatorState
from revoker.logs import use_color
from revoker.net import is_loopback


class UnsafeHostError(ValueError):
    """A non-loopback address was chosen implicitly."""


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``; port 0 picks a free port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
        sock.set_inheritable(True)
    except BaseException:
        sock.close()
        raise
    return sock


def base_url_for(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "localhost") else host  # nosec B104
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


class _Server(uvicorn.Server):
    """uvicorn server that stops on SIGINT/SIGTERM and returns normally (no re-raise)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        def handler(sig: int, frame: FrameType | None) -> None:
            self.handle_exit(sig, frame)

        originals = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, original in originals.items():
                signal.signal(sig, original)


def serve(
    config: EmulatorConfig,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    announce: Callable[[str], None],
    host_explicit: bool = False,
    state: EmulatorState | None = None,
) -> None:
    """Bind, announce ``base_url=...`` and the credentials, then serve until a signal.

    Refuses a non-loopback ``host`` unless ``host_explicit``. On exit the journal is
    closed and the state saved to ``config.state_path`` (if set).
    """
    if not host_explicit and not is_loopback(host):
        raise UnsafeHostError(f"refusing to listen on non-loopback {host!r} without --host")
    sock = bind_socket(host, port)
    app = create_app(config, state)
    try:
        base_url = base_url_for(host, sock.getsockname()[1])
        creds = config.credentials
        announce(f"base_url={base_url}")
        announce("Agora Media Gateway emulator listening; use it with:")
        announce(
            f"  export AGORA_BASE_URL={base_url} AGORA_CUSTOMER_ID={creds.customer_id} "
            f"AGORA_CUSTOMER_SECRET={creds.customer_secret}"
        )
        if config.default_app_id:
            announce(f"  export AGORA_APP_ID={config.default_app_id}")
        emulator = app.emulator
        announce(
            f"{emulator.state.key_count()} key(s), {len(emulator.state.streams)} live stream(s)"
            "; state at GET /_emulator/state; Ctrl-C to stop"
        )
        uvicorn_config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            use_colors=use_color(sys.stderr),
        )
        server = _Server(uvicorn_config)
        server.run(sockets=[sock])
    finally:
        sock.close()
        app.emulator.close()
