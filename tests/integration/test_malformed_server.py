"""Hostile servers over loopback: every task ends failed, nothing hangs, nothing leaks."""

from __future__ import annotations

import base64
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from revoker.agora.transport import MAX_BODY

pytestmark = pytest.mark.integration

SECRET = "garbage-test-secret-9f1"
TOKEN = base64.b64encode(f"cid:{SECRET}".encode()).decode()

Answer = Callable[[socket.socket, bytes], None]


def serve_with(answer: Answer) -> Iterator[str]:
    """A loopback HTTP server calling ``answer(conn, request)`` for each request read."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                while not stop.is_set() and (request := conn.recv(65536)):
                    answer(conn, request)
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


def run_revoker(
    tmp_path: Path, base_url: str, keys: list[str], *extra: str, command: str = "revoke"
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "keys.txt").write_text("\n".join(keys) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGORA_", "REVOKER_"))}
    env.update(AGORA_CUSTOMER_ID="cid", AGORA_CUSTOMER_SECRET=SECRET, AGORA_APP_ID="app1")
    audit = str(tmp_path / "audit.jsonl")
    args = ["--base-url", base_url, "--audit-log", audit, "--max-attempts", "1", "--max-rps", "0"]
    return subprocess.run(
        [sys.executable, "-m", "revoker", command, str(tmp_path / "keys.txt"), *args, *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


TASK_EVENTS = ("revoke", "verify", "query", "rotate", "disconnect")


def task_lines(tmp_path: Path) -> list[dict[str, object]]:
    """The task lines (not the listings made before the first DELETE)."""
    lines = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    return [line for line in lines if line.get("event") in TASK_EVENTS]


@pytest.fixture
def garbage_server() -> Iterator[str]:
    """A loopback HTTP server whose every answer has a malformed status line."""
    yield from serve_with(
        lambda conn, _: conn.sendall(b"HTTP/1.1 2x0 WAT\r\nContent-Length: 0\r\n\r\n")
    )


# small and large runs go through the same transport
@pytest.mark.parametrize("count", [2, 65], ids=["small-run", "large-run"])
def test_malformed_answers_fail_cleanly_without_leaking(
    tmp_path: Path, garbage_server: str, count: int
) -> None:
    keys = [f"plain-stream-key-{i:04d}" for i in range(count)]
    result = run_revoker(tmp_path, garbage_server, keys)
    assert result.returncode == 1, result.stderr
    audit = (tmp_path / "audit.jsonl").read_text()
    assert [t["outcome"] for t in task_lines(tmp_path)] == ["failed"] * count * 4
    for text in (result.stdout, result.stderr, audit):
        assert SECRET not in text
        assert TOKEN not in text
        assert not any(key in text for key in keys)
    assert "Traceback" not in result.stderr


def trickle(conn: socket.socket, _: bytes) -> None:
    """A 200 whose headers never end: one byte every 50 ms."""
    for byte in b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + b"X" * 10_000:
        conn.sendall(bytes([byte]))
        time.sleep(0.05)


@pytest.mark.parametrize("command", ["revoke", "verify"])
def test_a_trickling_server_ends_each_attempt_at_the_timeout_and_the_run_finishes(
    tmp_path: Path, command: str
) -> None:
    for url in serve_with(trickle):
        result = run_revoker(
            tmp_path,
            url,
            ["plain-stream-key-0001"],
            "--timeout",
            "0.5",
            "--max-attempts",
            "2",
            command=command,
        )
    assert result.returncode == 1, result.stderr
    tasks = task_lines(tmp_path)
    assert len(tasks) == 4
    for task in tasks:
        assert task["outcome"] == "failed"
        assert "deadline_exceeded (2 attempts)" in str(task["message"])


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 100_000 + b"\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\n{}\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2x\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nContent-Length: " + str(MAX_BODY + 1).encode() + b"\r\n\r\n{}",
    ],
    ids=["100kb-header", "content-length-and-chunked", "malformed-content-length", "over-cap"],
)
def test_an_answer_http_cannot_vouch_for_is_a_failed_attempt(tmp_path: Path, answer: bytes) -> None:
    for url in serve_with(lambda conn, _: conn.sendall(answer)):
        result = run_revoker(tmp_path, url, ["plain-stream-key-0001"], "--regions", "na")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    [task] = task_lines(tmp_path)
    assert task["outcome"] == "failed"
    assert str(task["message"]).startswith("no response: ")


def _bomb() -> bytes:
    return gzip.compress(b"{" + b" " * 200_000_000 + b"}", compresslevel=9)


def _huge(conn: socket.socket, _: bytes) -> None:
    conn.sendall(b"HTTP/1.1 500 Oops\r\nConnection: close\r\n\r\n")
    chunk = b"x" * 1_000_000
    for _i in range(100):
        conn.sendall(chunk)
    conn.close()


def test_a_gzip_bomb_and_a_100mb_body_fail_the_attempt_at_the_size_cap(tmp_path: Path) -> None:
    bomb = _bomb()
    head = b"HTTP/1.1 404 Not Found\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"

    def send_bomb(conn: socket.socket, _: bytes) -> None:
        conn.sendall(head % len(bomb) + bomb)

    for name, answer in (("bomb", send_bomb), ("huge", _huge)):
        (tmp_path / name).mkdir()
        for url in serve_with(answer):
            result = run_revoker(tmp_path / name, url, ["plain-stream-key-0001"], "--regions", "na")
        assert result.returncode == 1, result.stderr
        [task] = task_lines(tmp_path / name)
        assert task["outcome"] == "failed"
        assert task["message"] == "no response: response_too_large (1 attempts)"


def _header(request: bytes, name: bytes) -> bytes:
    for line in request.split(b"\r\n"):
        if line.lower().startswith(name.lower() + b":"):
            return line.split(b":", 1)[1].strip()
    return b""


def test_a_server_echoing_the_basic_token_as_its_request_id_never_gets_it_recorded(
    tmp_path: Path,
) -> None:
    def echo(conn: socket.socket, request: bytes) -> None:
        token = _header(request, b"Authorization").removeprefix(b"Basic ")
        conn.sendall(b"HTTP/1.1 404 Not Found\r\nX-Request-ID: " + token)
        conn.sendall(b"\r\nContent-Length: 2\r\n\r\n{}")

    for url in serve_with(echo):
        result = run_revoker(tmp_path, url, ["plain-stream-key-0001"], "--regions", "na")
    audit = (tmp_path / "audit.jsonl").read_text()
    for text in (result.stdout, result.stderr, audit):
        assert TOKEN not in text
    [task] = task_lines(tmp_path)
    assert task["server_request_id"] == "***"


@pytest.mark.parametrize("status", [409, 429, 503])
def test_the_plain_key_and_terminal_escapes_in_a_server_message_never_reach_the_output(
    tmp_path: Path, status: int
) -> None:
    key = "plain-stream-key-0001"

    def blame(conn: socket.socket, request: bytes) -> None:
        path = request.split(b" ", 2)[1].decode()
        text = f"key {path.rsplit('/', 1)[1]} is busy\x1b[2K\rrevoked"
        body = json.dumps({"message": text}).encode()
        head = f"HTTP/1.1 {status} Busy\r\nRetry-After: 0\r\nX-Request-ID: {'r' * 200}\r\n"
        conn.sendall(head.encode() + b"Content-Length: %d\r\n\r\n" % len(body) + body)

    for url in serve_with(blame):
        result = run_revoker(
            tmp_path, url, [key], "--regions", "na", "--max-attempts", "2", "--output", "text"
        )
    assert result.returncode == 1, result.stderr
    audit = (tmp_path / "audit.jsonl").read_text()
    for text in (result.stdout, result.stderr, audit):
        assert key not in text
    assert "\x1b" not in result.stdout
    [task] = task_lines(tmp_path)
    assert task["message"] == "key *** is busy\\x1b[2K\\x0drevoked (after 2 attempts)"
    assert task["server_request_id"] == "(invalid)"


def test_sigint_during_a_trickled_answer_stops_within_the_deadline(tmp_path: Path) -> None:
    asked = threading.Event()

    def trickle_and_tell(conn: socket.socket, request: bytes) -> None:
        asked.set()
        trickle(conn, request)

    for url in serve_with(trickle_and_tell):
        (tmp_path / "keys.txt").write_text("plain-stream-key-0001\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AGORA_", "REVOKER_"))}
        env.update(AGORA_CUSTOMER_ID="cid", AGORA_CUSTOMER_SECRET=SECRET, AGORA_APP_ID="app1")
        audit = str(tmp_path / "audit.jsonl")
        options = ["--base-url", url, "--audit-log", audit, "--regions", "na", "--timeout", "1"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "revoker", "revoke", str(tmp_path / "keys.txt"), *options],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            assert asked.wait(30), "no request reached the server"
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=30)
        finally:
            proc.kill()
    assert proc.returncode == 130, stderr
    # The trickled request is the first one: the listing before the first DELETE. It
    # ended at its deadline, and the pair it kept from starting is recorded as such.
    lines = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    [listing] = [line for line in lines if line["event"] == "listing"]
    assert listing["outcome"] == "failed"
    assert listing["message"] == "no response: deadline_exceeded (1 attempts)"
    [not_started] = [line for line in lines if line["event"] == "not_started"]
    assert not_started["tasks"] == 1
