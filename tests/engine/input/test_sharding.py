"""--shard I/N and --shard-count N: shards as separate processes cover every pair once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from revoker.engine.input.planner import shard_of
from revoker.models import key_id

pytestmark = pytest.mark.integration
APP = "app1"
NO_LIMITS = ("--delete-rps", "0", "--get-rps", "0")  # speed; limits are tested elsewhere
KEYS = [f"shardKey-{i:04d}-{'x' * (i % 5)}" for i in range(60)]


def revoker(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "revoker", "-q", *args, "--max-rps", "0"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def finish(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return out


def revoke_lines(path: Path) -> list[tuple[str, str, str]]:
    return [
        (r["app_id"], r["region"], r["key_id"])
        for r in map(json.loads, path.read_text().splitlines())
        if r["event"] == "revoke"
    ]


def report_counts(*logs: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "revoker", "report", "--format", "json", *map(str, logs)],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    data: dict[str, Any] = json.loads(out)
    return data["counts"]


@pytest.fixture
def key_files(tmp_path: Path) -> tuple[Path, Path]:
    """The inventory (60 keys) and the seed: 40 of them stored, some in two regions only."""
    keys = tmp_path / "keys.csv"
    keys.write_text("stream_key\n" + "".join(f"{k}\n" for k in KEYS), encoding="utf-8")
    seed = tmp_path / "seed.csv"
    seed.write_text(
        "stream_key,app_id,regions\n"
        + "".join(f"{k},{APP},{'na;eu' if i % 3 else ''}\n" for i, k in enumerate(KEYS[:40])),
        encoding="utf-8",
    )
    return keys, seed


def test_three_shard_processes_cover_every_pair_once_and_report_matches_one_run(
    tmp_path: Path, key_files: tuple[Path, Path]
) -> None:
    from revoker.emulator.process import EmulatorProcess

    keys, seed = key_files
    assert {shard_of(k, 3) for k in KEYS} == {0, 1, 2}
    with EmulatorProcess("--seed-keys", str(seed), "--app-id", APP, *NO_LIMITS) as emu:
        env = {**os.environ, **emu.client_env()}
        procs = [
            revoker(env, "revoke", "--absent-ok", "--app-id", APP, str(keys), "--shard", f"{i}/3",
                    "--audit-log", str(tmp_path / f"shard{i}.jsonl"))
            for i in range(3)
        ]  # fmt: skip
        for proc in procs:
            finish(proc)
        assert emu.state()["keys"] == []
    logs = [tmp_path / f"shard{i}.jsonl" for i in range(3)]
    covered = [pair for log in logs for pair in revoke_lines(log)]
    expected = {(APP, region, key_id(k)) for k in KEYS for region in ("na", "eu", "ap", "cn")}
    assert len(covered) == len(set(covered)) == len(expected)  # no pair twice
    assert set(covered) == expected
    for i, log in enumerate(logs):  # each shard only sent its own keys
        shard_ids = {key_id(k) for k in KEYS if shard_of(k, 3) == i}
        assert {kid for _, _, kid in revoke_lines(log)} == shard_ids

    with EmulatorProcess("--seed-keys", str(seed), "--app-id", APP, *NO_LIMITS) as emu:
        env = {**os.environ, **emu.client_env()}
        single = tmp_path / "single.jsonl"
        finish(
            revoker(
                env, "revoke", "--absent-ok", "--app-id", APP, str(keys), "--audit-log", str(single)
            )
        )
    verified = subprocess.run(
        [sys.executable, "-m", "revoker", "report", "--verify", *map(str, logs)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    assert verified.stderr.count(": chained, head ") == 3
    merged = report_counts(*logs)
    assert merged == report_counts(single)
    assert merged["revoke"]["total"] == {"absent": 240 - 108, "revoked": 14 * 4 + 26 * 2}


def test_shard_count_takes_the_index_from_job_completion_index(
    tmp_path: Path, key_files: tuple[Path, Path]
) -> None:
    from revoker.emulator.process import EmulatorProcess

    keys, seed = key_files
    with EmulatorProcess("--seed-keys", str(seed), "--app-id", APP, *NO_LIMITS) as emu:
        env = {**os.environ, **emu.client_env(), "JOB_COMPLETION_INDEX": "2"}
        log = tmp_path / "pod2.jsonl"
        out = finish(revoker(env, "revoke", "--absent-ok", "--app-id", APP, str(keys),
                             "--shard-count", "3", "--audit-log", str(log),
                             "--output", "json"))  # fmt: skip
        left = {k["key"] for k in emu.state()["keys"]}
    mine = {k for k in KEYS if shard_of(k, 3) == 2}
    assert {kid for _, _, kid in revoke_lines(log)} == {key_id(k) for k in mine}
    assert not left & mine
    assert left == {k for k in KEYS[:40] if shard_of(k, 3) != 2}
    assert json.loads(out)["plan"]["out_of_shard"] == len(KEYS) - len(mine)


def test_shard_count_without_job_completion_index_is_a_usage_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "JOB_COMPLETION_INDEX"}
    env.update(
        AGORA_CUSTOMER_ID="cid", AGORA_CUSTOMER_SECRET="s", AGORA_BASE_URL="http://127.0.0.1:9"
    )
    proc = revoker(env, "revoke", "--app-id", APP, "--key", KEYS[0], "--shard-count", "3",
                   "--audit-log", str(tmp_path / "x.jsonl"))  # fmt: skip
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "JOB_COMPLETION_INDEX" in err
