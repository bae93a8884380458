"""Every wait and rate option has a sane range: beyond it, exit 2 and not one request."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.helpers import revoker_env, run_revoker, write_keys_csv

HUGE = "9" * 400


@pytest.fixture
def listener() -> Iterator[tuple[str, list[int]]]:
    """A loopback port that counts the connections made to it (and answers none)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.1)
    accepted: list[int] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            accepted.append(1)
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}", accepted
    stop.set()
    thread.join(timeout=2)
    server.close()


@pytest.mark.parametrize(
    "args",
    [
        ["revoke", "--verify", "--verify-delay", "1e308"],
        ["revoke", "--verify", "--verify-delay", "3601"],
        ["revoke", "--max-rps", "1e-300"],
        ["revoke", "--max-rps", "1e308"],
        ["revoke", "--timeout", "1e308"],
        ["revoke", "--disconnect", "--disconnect-timeout", "1e308"],
        ["verify", "--max-rps", "1e-300"],
        ["prune", "--older-than", f"{HUGE}d"],
        ["prune", "--older-than", "36501d"],
        ["rotate", "--new-keys-file", "new.csv", "--expires-after", HUGE],
    ],
    ids=lambda args: " ".join(a[:12] for a in args),
)
def test_an_out_of_range_wait_or_rate_is_a_usage_error_before_any_request(
    tmp_path: Path, listener: tuple[str, list[int]], args: list[str]
) -> None:
    url, accepted = listener
    keys = write_keys_csv(tmp_path / "keys.csv", ["plain-stream-key-0001"])
    env = revoker_env({"AGORA_CUSTOMER_ID": "cid", "AGORA_CUSTOMER_SECRET": "s3cret-value"})
    command, *options = args
    result = run_revoker(
        command, str(keys), "--base-url", url, "--audit-log", str(tmp_path / "a.jsonl"),
        *options, env=env, cwd=tmp_path, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    if command == "prune":
        assert HUGE not in result.stderr  # the message names the limit, not 400 digits back
    assert accepted == []


def test_the_largest_accepted_values_still_run(tmp_path: Path) -> None:
    keys = write_keys_csv(tmp_path / "keys.csv", ["plain-stream-key-0001"])
    env = revoker_env({"AGORA_CUSTOMER_ID": "cid", "AGORA_CUSTOMER_SECRET": "s3cret-value"})
    result = run_revoker(
        "revoke", str(keys), "--dry-run", "--verify", "--verify-delay", "3600",
        "--max-rps", "0.01", "--timeout", "3600", "--disconnect", "--disconnect-timeout", "3600",
        "--audit-log", str(tmp_path / "a.jsonl"), env=env, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
