"""Danger first: keys that live streams push with right now are revoked before any other.

The listing before the first DELETE names the keys live streams use; wherever
they are in the input, their DELETEs (and with --disconnect their cuts) go first.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from revoker.emulator.process import EmulatorProcess
from tests.reliability.helpers import (
    key_requests,
    make_keys,
    read_journal,
    revoker_env,
    run_revoker,
    write_keys_csv,
)

pytestmark = pytest.mark.integration

APP = "danger-app"
REGIONS = ("na", "eu", "ap", "cn")


def seed_files(tmp_path: Path, keys: list[str], streamed: list[str]) -> tuple[Path, Path]:
    seed = tmp_path / "seed.csv"
    seed.write_text("stream_key,app_id\n" + "".join(f"{k},{APP}\n" for k in keys), encoding="utf-8")
    live = tmp_path / "live.csv"
    live.write_text(
        "stream_key,app_id,region,channel,uid,protocol\n"
        + "".join(f"{k},{APP},{REGIONS[i % 4]},ch{i},{i},rtmp\n" for i, k in enumerate(streamed)),
        encoding="utf-8",
    )
    return seed, live


def revoke_on_emulator(
    tmp_path: Path, keys: list[str], seed: Path, live: Path, *extra: str
) -> tuple[Any, dict[str, Any], list[dict[str, Any]]]:
    """``revoke`` of ``keys`` (one worker, JSON) against an emulator seeded with ``seed``
    and ``live``: the finished process, the emulator's state after, its key requests."""
    journal = tmp_path / "journal.jsonl"
    keys_csv = write_keys_csv(tmp_path / "keys.csv", keys, APP)
    args = ["revoke", str(keys_csv), "--audit-log", str(tmp_path / "audit.jsonl")]
    args += ["--concurrency", "1", "--output", "json", *extra]
    with EmulatorProcess(
        "--seed-keys", str(seed), "--live-streams", str(live), "--journal", str(journal)
    ) as emu:
        result = run_revoker(*args, env=revoker_env(emu.client_env()))
        left = emu.state()
    return result, left, key_requests(read_journal(journal))


@pytest.mark.parametrize("disconnect", [False, True], ids=["plain", "disconnect"])
def test_streamed_keys_at_the_end_of_the_input_are_deleted_first(
    tmp_path: Path, disconnect: bool
) -> None:
    keys = make_keys(30, "dngr")
    streamed = keys[-3:]
    seed, live = seed_files(tmp_path, keys, streamed)
    extra = ["--disconnect"] if disconnect else []
    result, left, requests = revoke_on_emulator(tmp_path, keys, seed, live, *extra)
    assert result.returncode == 0, result.stderr[-2000:]
    assert left["keys"] == []
    deletes = [e["key"] for e in requests if e["method"] == "DELETE"]
    first = deletes[: len(streamed) * len(REGIONS)]
    assert set(first) == set(streamed)
    if disconnect:
        assert left["streams"] == []
    else:
        assert len(left["streams"]) == len(streamed)
        assert "--disconnect" in result.stderr + result.stdout


def test_keys_of_whip_streams_at_the_end_of_the_input_are_found_and_deleted_early(
    tmp_path: Path,
) -> None:
    """A WHIP stream names no key: its key is found by a GET ahead of the pass (the
    scout), whose answer is the pair's own lookup, so no pair is looked up twice."""
    keys = make_keys(30, "whip")
    whip = keys[-2:]
    seed = tmp_path / "seed.csv"
    seed.write_text(
        "stream_key,app_id,channel,uid\n"
        + "".join(f"{k},{APP},ch{i},{i}\n" for i, k in enumerate(keys)),
        encoding="utf-8",
    )
    live = tmp_path / "live.csv"
    live.write_text(
        "stream_key,app_id,region,channel,uid,protocol\n"
        + "".join(
            f"{k},{APP},{REGIONS[i]},ch{keys.index(k)},{keys.index(k)},whip\n"
            for i, k in enumerate(whip)
        ),
        encoding="utf-8",
    )
    result, left, requests = revoke_on_emulator(tmp_path, keys, seed, live, "--disconnect")
    assert result.returncode == 0, result.stderr[-2000:]
    assert left["keys"] == []
    assert left["streams"] == []
    deletes = [e["key"] for e in requests if e["method"] == "DELETE"]
    # Both WHIP keys are gone in every region before the first half of the input is.
    last_whip = max(i for i, key in enumerate(deletes) if key in whip)
    assert last_whip < deletes.index(keys[15])
    assert "revoked ahead of their turn: 2" in result.stderr + result.stdout
    gets = Counter((e["key"], e["region"]) for e in requests if e["method"] == "GET")
    assert set(gets.values()) == {1}
    assert len(gets) == len(keys) * len(REGIONS)
