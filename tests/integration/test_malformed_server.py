"""A server answering garbage: every task ends failed, and nothing secret leaks."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from revoker.client import SMALL_RUN

pytestmark = pytest.mark.integration

SECRET = "garbage-test-secret-9f1"


@pytest.fixture
def garbage_server() -> Iterator[str]:
    """A loopback HTTP server whose every answer has a malformed status line."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                while conn.recv(65536):
                    conn.sendall(b"HTTP/1.1 2x0 WAT\r\nContent-Length: 0\r\n\r\n")
            except OSError:
                return

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(timeout=2)
    listener.close()


# keys x 4 regions on either side of the size where the aiohttp transport takes over
@pytest.mark.parametrize(
    "count", [2, SMALL_RUN // 4 + 1], ids=["httpx-transport", "aiohttp-transport"]
)
def test_malformed_answers_fail_cleanly_without_leaking(
    tmp_path: Path, garbage_server: str, count: int
) -> None:
    keys = [f"plain-stream-key-{i:04d}" for i in range(count)]
    (tmp_path / "keys.txt").write_text("\n".join(keys) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGORA_", "REVOKER_"))}
    env.update(AGORA_CUSTOMER_ID="cid", AGORA_CUSTOMER_SECRET=SECRET, AGORA_APP_ID="app1")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "revoker",
            "revoke",
            str(tmp_path / "keys.txt"),
            "--base-url",
            garbage_server,
            "--audit-log",
            str(tmp_path / "audit.jsonl"),
            "--max-attempts",
            "1",
            "--max-rps",
            "0",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    audit = (tmp_path / "audit.jsonl").read_text()
    assert audit.count('"outcome":"failed"') == count * 4
    token = base64.b64encode(f"cid:{SECRET}".encode()).decode()
    for text in (result.stdout, result.stderr, audit):
        assert SECRET not in text
        assert token not in text
        assert not any(key in text for key in keys)
    assert "Traceback" not in result.stderr
