"""revoker revoke end to end: the real CLI process against the real emulator over loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from revoker.emulator.process import EmulatorProcess

pytestmark = pytest.mark.integration

APP = "9d2498880e934632b38b0a68fa2f1622"
FORBIDDEN_APP = "forbidden0app"


def seed(tmp_path: Path, keys: list[str], app: str = APP) -> Path:
    path = tmp_path / "seed.csv"
    path.write_text("stream_key,app_id\n" + "".join(f"{k},{app}\n" for k in keys))
    return path


def revoker(
    emu: EmulatorProcess, tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AGORA_", "REVOKER_"))}
    environment.update(emu.client_env())
    environment.update(env or {})
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "revoker",
            "--log-format",
            "json",
            "revoke",
            "--audit-log",
            str(tmp_path / "audit.jsonl"),
            "--output",
            "json",
            *args,
        ],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )


def lines(tmp_path: Path, event: str = "revoke") -> list[dict[str, Any]]:
    text = (tmp_path / "audit.jsonl").read_text()
    return [r for r in map(json.loads, text.splitlines()) if r["event"] == event]


@pytest.fixture
def keys() -> list[str]:
    return [f"live-key-{i:04d}-abcdef" for i in range(25)]


@pytest.fixture
def emulator(tmp_path: Path, keys: list[str]) -> Iterator[EmulatorProcess]:
    with EmulatorProcess(
        "--seed-keys", str(seed(tmp_path, keys)), "--forbidden-app", FORBIDDEN_APP
    ) as emu:
        yield emu


def keys_file(tmp_path: Path, rows: list[tuple[str, str]]) -> Path:
    path = tmp_path / "keys.csv"
    path.write_text("stream_key,app_id\n" + "".join(f"{k},{a}\n" for k, a in rows))
    return path


def test_every_outcome_against_the_emulator(
    tmp_path: Path, emulator: EmulatorProcess, keys: list[str]
) -> None:
    path = keys_file(
        tmp_path,
        [(keys[0], APP), ("never-seeded-key-1", APP), ("some-key-forbidden", FORBIDDEN_APP)],
    )
    result = revoker(emulator, tmp_path, str(path), "--verify")
    assert result.returncode == 1, result.stderr
    by_key = {(r["key_hint"], r["region"]): r["outcome"] for r in lines(tmp_path)}
    assert {o for (hint, _), o in by_key.items() if hint == "live...def"} == {"revoked"}
    assert {o for (hint, _), o in by_key.items() if hint == "neve...y-1"} == {"absent"}
    assert {o for (hint, _), o in by_key.items() if hint == "some...den"} == {"failed"}
    # The listing before the first DELETE said Media Gateway is not enabled for that
    # app: its pairs fail without a DELETE, and the listings record the 403.
    forbidden = [r for r in lines(tmp_path) if r["app_id"] == FORBIDDEN_APP]
    assert all(r["http_status"] is None and r["attempts"] == [] for r in forbidden)
    assert forbidden[0]["message"].startswith(
        f"not sent: listing live streams of app {FORBIDDEN_APP}"
    )
    assert "Media Gateway is not enabled for this project." in forbidden[0]["message"]
    refused = [r for r in lines(tmp_path, "listing") if r["app_id"] == FORBIDDEN_APP]
    assert len(refused) == 4
    assert all(r["http_status"] == 403 and r["refused"] for r in refused)
    summary = json.loads(result.stdout)
    assert summary["keys"]["not_found"] == 1  # never-seeded-key-1: not revoked
    assert emulator.state()["keys"] == [k for k in emulator.state()["keys"] if k["key"] != keys[0]]
    assert not any(k["key"] == keys[0] for k in emulator.state()["keys"])


@pytest.mark.parametrize("auth", ["basic", "hmac"])
def test_basic_and_hmac_auth_revoke_every_pair(
    tmp_path: Path, emulator: EmulatorProcess, keys: list[str], auth: str
) -> None:
    path = keys_file(tmp_path, [(k, APP) for k in keys])
    result = revoker(emulator, tmp_path, str(path), "--auth", auth, "--verify")
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout)
    assert summary["revoke"]["counts"] == {
        "absent": 0,
        "failed": 0,
        "not_attempted": 0,
        "revoked": 100,
    }
    assert summary["verify"]["counts"] == {
        "absent": 100,
        "failed": 0,
        "not_attempted": 0,
        "present": 0,
    }
    assert emulator.state()["keys"] == []
    record = lines(tmp_path)[0]
    assert record["server_request_id"] == record["request_id"]


def test_wrong_credentials_exit_3_with_the_rest_not_attempted(
    tmp_path: Path, emulator: EmulatorProcess, keys: list[str]
) -> None:
    path = keys_file(tmp_path, [(k, APP) for k in keys])
    result = revoker(
        emulator,
        tmp_path,
        str(path),
        "--concurrency",
        "4",
        env={"AGORA_CUSTOMER_SECRET": "wrong-secret"},
    )
    assert result.returncode == 3
    outcomes = Counter(r["outcome"] for r in lines(tmp_path))
    outcomes["not_attempted"] += sum(r["tasks"] for r in lines(tmp_path, "not_started"))
    assert sum(outcomes.values()) == 100
    assert outcomes["not_attempted"] >= 90
    assert all(r["server_request_id"] is None for r in lines(tmp_path) if r["http_status"] == 401)
    assert len(emulator.state()["keys"]) == 100, "nothing was deleted"
    resumed = revoker(emulator, tmp_path, str(path), "--resume")
    assert resumed.returncode == 0, "fixing the credentials and resuming finishes the job"
    assert emulator.state()["keys"] == []


def test_rate_limited_requests_wait_for_retry_after_and_end_revoked(
    tmp_path: Path, keys: list[str]
) -> None:
    with EmulatorProcess(
        "--seed-keys", str(seed(tmp_path, keys[:10])), "--delete-rps", "10"
    ) as emu:
        path = keys_file(tmp_path, [(k, APP) for k in keys[:10]])
        result = revoker(emu, tmp_path, str(path), "--max-rps", "0")
        assert result.returncode == 0, result.stdout
        records = lines(tmp_path)
        assert {r["outcome"] for r in records} == {"revoked"}
        throttled = [a for r in records for a in r["attempts"] if a.get("status") == 429]
        assert throttled, "the emulator's 10/s limit was hit"
        assert emu.state()["keys"] == []


def test_injected_5xx_and_resets_still_end_every_pair_revoked(
    tmp_path: Path, keys: list[str]
) -> None:
    with EmulatorProcess(
        "--seed-keys",
        str(seed(tmp_path, keys)),
        "--error-rate",
        "0.3",
        "--reset-rate",
        "0.1",
        "--seed",
        "7",
        "--delete-rps",
        "0",
    ) as emu:
        path = keys_file(tmp_path, [(k, APP) for k in keys])
        result = revoker(emu, tmp_path, str(path), "--max-rps", "0", "--max-attempts", "12")
        assert result.returncode == 0, result.stdout
        records = lines(tmp_path)
        assert len(records) == 100
        assert {r["outcome"] for r in records} == {"revoked"}
        errors = Counter(a.get("error") or a.get("status") for r in records for a in r["attempts"])
        assert any(isinstance(k, int) and k >= 500 for k in errors)
        assert any(isinstance(k, str) for k in errors), "resets were seen as transport errors"
        assert emu.state()["keys"] == []
