"""revoker rotate end to end: the real CLI process against the real emulator over loopback."""

from __future__ import annotations

import csv
import json
import os
import signal
import stat
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from revoker.emulator.process import EmulatorProcess
from revoker.models import key_id
from tests.reliability.helpers import (
    read_journal,
    revoker_cmd,
    revoker_env,
    run_revoker,
    wait_for,
    wait_until_stable,
)

pytestmark = pytest.mark.integration

APP = "9d2498880e934632b38b0a68fa2f1622"
# key -> (regions where it is stored, channel, uid, expires_after)
SEEDED = {
    "leaked-key-0001-abcdef": ("na;eu", "news", "1001", 0),
    "leaked-key-0002-abcdef": ("ap", "sports", "2002", 3600),
}
NOWHERE = "leaked-key-0003-abcdef"  # stored in no region


def seed_file(tmp_path: Path, rows: dict[str, tuple[str, str, str, int]]) -> Path:
    path = tmp_path / "seed.csv"
    lines = ["stream_key,app_id,regions,channel,uid,expires_after"]
    lines += [f"{k},{APP},{r},{c},{u},{e}" for k, (r, c, u, e) in rows.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def keys_file(tmp_path: Path, keys: list[str]) -> Path:
    path = tmp_path / "keys.csv"
    path.write_text("stream_key,app_id\n" + "".join(f"{k},{APP}\n" for k in keys))
    return path


def rotate(
    emu: EmulatorProcess, tmp_path: Path, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return run_revoker(
        "rotate",
        "--audit-log",
        str(tmp_path / "audit.jsonl"),
        "--output",
        "json",
        *args,
        env=revoker_env(emu.client_env()),
        timeout=timeout,
    )


def rotate_lines(tmp_path: Path) -> list[dict[str, Any]]:
    text = (tmp_path / "audit.jsonl").read_text(encoding="utf-8")
    return [r for r in map(json.loads, text.splitlines()) if r["event"] == "rotate"]


def results(tmp_path: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """The latest result line per (region, key_id)."""
    return {(r["region"], r["key_id"]): r for r in rotate_lines(tmp_path) if r["phase"] == "result"}


def new_keys(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_rotate_replaces_each_key_where_it_exists_and_the_new_keys_work(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    out = tmp_path / "new-keys.csv"
    keys = [*SEEDED, NOWHERE]
    with EmulatorProcess(
        "--seed-keys", str(seed_file(tmp_path, SEEDED)), "--journal", str(journal)
    ) as emu:
        done = rotate(emu, tmp_path, str(keys_file(tmp_path, keys)), "--new-keys-file", str(out))
        # NOWHERE is stored in no region: nothing to rotate is not "rotated".
        assert done.returncode == 1, done.stderr[-2000:]
        summary = json.loads(done.stdout)
        assert summary["keys"]["rotated"] == len(SEEDED)
        assert [k["key_id"] for k in summary["keys"]["not_found_keys"]] == [key_id(NOWHERE)]
        zero = {"absent": 0, "failed": 0, "not_attempted": 0, "rotated": 0, "unknown": 0}
        assert summary["rotate"]["per_region"] == {
            "na": {**zero, "rotated": 1, "absent": 2},
            "eu": {**zero, "rotated": 1, "absent": 2},
            "ap": {**zero, "rotated": 1, "absent": 2},
            "cn": {**zero, "absent": 3},
        }
        rows = new_keys(out)
        assert stat.S_IMODE(out.stat().st_mode) == 0o600
        got = {(r["region"], r["old_key_id"]): (r["channel"], r["uid"]) for r in rows}
        assert got == {
            ("na", key_id(keys[0])): ("news", "1001"),
            ("eu", key_id(keys[0])): ("news", "1001"),
            ("ap", key_id(keys[1])): ("sports", "2002"),
        }
        assert {r["expires_after"] for r in rows if r["region"] == "ap"} == {"3600"}

        # Each new key is stored in its region only, with the old channel and uid;
        # the old keys are gone everywhere.
        state = {(k["region"], k["key"]): k for k in emu.state()["keys"]}
        assert {key for _, key in state} == {r["new_stream_key"] for r in rows}
        for row in rows:
            shown = run_revoker(
                "show", "--app-id", APP, "--output", "json", "--", row["new_stream_key"],
                env=revoker_env(emu.client_env()),
            )  # fmt: skip
            assert shown.returncode == 0, shown.stderr[-2000:]
            regions = {r["region"]: r for r in json.loads(shown.stdout)["regions"]}
            present = {name for name, r in regions.items() if r["present"]}
            assert present == {row["region"]}
            assert regions[row["region"]]["channel"] == row["channel"]
            assert regions[row["region"]]["uid"] == row["uid"]

    # Order per pair: the create follows that pair's DELETE answered 200, in its region.
    entries = read_journal(journal)
    posts = [e for e in entries if e["method"] == "POST"]
    assert sorted(e["region"] for e in posts) == ["ap", "eu", "na"]
    for post in posts:
        before = entries[: entries.index(post)]
        assert any(
            e["method"] == "DELETE" and e["region"] == post["region"] and e["status"] == 200
            for e in before
        )
    # Absent pairs were still DELETEd (a key generated by a script is revoked that way).
    deletes = Counter(e["region"] for e in entries if e["method"] == "DELETE")
    assert deletes == {"na": 3, "eu": 3, "ap": 3, "cn": 3}

    # The audit log names the new keys by key_id and hint, with every request ID.
    lines = results(tmp_path)
    rotated = [r for r in lines.values() if r["outcome"] == "rotated"]
    assert len(rotated) == 3
    for record in rotated:
        assert record["new_key_id"].startswith("sha256:")
        ids = {a["request_id"] for a in record["attempts"]}
        assert {record["lookup"]["request_id"], record["delete"]["request_id"]} <= ids
        assert record["create"]["request_id"] == record["request_id"]

    # Secrets: no new key anywhere but the new-keys file.
    audit = (tmp_path / "audit.jsonl").read_text(encoding="utf-8")
    for row in rows:
        for text in (done.stdout, done.stderr, audit):
            assert row["new_stream_key"] not in text


def test_a_failed_delete_creates_nothing(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    out = tmp_path / "new-keys.csv"
    with EmulatorProcess(
        "--seed-keys", str(seed_file(tmp_path, SEEDED)), "--journal", str(journal),
        "--error-rate", "1", "--fault-method", "DELETE",
    ) as emu:  # fmt: skip
        done = rotate(
            emu, tmp_path, str(keys_file(tmp_path, list(SEEDED))), "--new-keys-file", str(out),
            "--max-attempts", "1",
        )  # fmt: skip
        assert done.returncode == 1
        assert len(emu.state()["keys"]) == 3  # every old key still there, nothing new
    assert [e for e in read_journal(journal) if e["method"] == "POST"] == []
    assert new_keys(out) == []
    failed = [r for r in results(tmp_path).values() if r["outcome"] == "failed"]
    assert len(failed) == 8  # 2 keys x 4 regions: stored or not, every DELETE failed
    assert all("nothing created" in r["message"] for r in failed)
    assert all(not r.get("old_key_deleted") for r in failed)


def test_a_failed_create_is_audited_and_says_the_old_key_is_gone(tmp_path: Path) -> None:
    # A channel of 64 bytes: the create is refused ("Invalid settings.").
    seeded = {"leaked-key-0004-abcdef": ("na", "c" * 64, "7", 0)}
    out = tmp_path / "new-keys.csv"
    with EmulatorProcess("--seed-keys", str(seed_file(tmp_path, seeded))) as emu:
        done = rotate(
            emu, tmp_path, str(keys_file(tmp_path, list(seeded))), "--new-keys-file", str(out),
            "--output", "text", "--regions", "na",
        )  # fmt: skip
        assert done.returncode == 1
        assert emu.state()["keys"] == []  # old key deleted, no replacement
    assert "old key already deleted, no replacement issued" in done.stdout
    (record,) = results(tmp_path).values()
    assert record["outcome"] == "failed"
    assert record["old_key_deleted"] is True
    assert record["create"]["http_status"] == 400
    assert record["message"].startswith("old key already deleted, no replacement issued")
    assert new_keys(out) == []


def test_sigkill_between_intent_and_result_then_resume_reports_unknown_and_never_creates_again(
    tmp_path: Path,
) -> None:
    key = "leaked-key-0005-abcdef"
    seeded = {key: ("na", "live", "5", 0)}
    journal = tmp_path / "journal.jsonl"
    audit = tmp_path / "audit.jsonl"
    out = tmp_path / "new-keys.csv"
    with EmulatorProcess(
        "--seed-keys", str(seed_file(tmp_path, seeded)), "--journal", str(journal),
        "--create-latency-ms", "1500",
    ) as emu:  # fmt: skip
        env = revoker_env(emu.client_env())
        args = [
            "rotate", str(keys_file(tmp_path, [key])), "--regions", "na",
            "--audit-log", str(audit), "--new-keys-file", str(out),
        ]  # fmt: skip
        proc = subprocess.Popen(
            revoker_cmd(*args),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(
                lambda: audit.exists() and b'"phase":"create"' in audit.read_bytes(),
                timeout=30,
                what="the create intent line",
            )
            time.sleep(0.2)  # let the create leave (the test holds either way)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == -signal.SIGKILL

        resumed = run_revoker(*args, "--resume", "--append", "--output", "json", env=env)
        assert resumed.returncode == 1, resumed.stderr[-2000:]
        assert json.loads(resumed.stdout)["rotate"]["counts"] == {
            "absent": 0,
            "failed": 0,
            "not_attempted": 0,
            "rotated": 0,
            "unknown": 1,
        }
        # A create the killed run had in flight lands once the emulator's delay ends
        # (the kill may also have come before it left): at most one POST, one new key.
        wait_until_stable(journal, quiet=2.0)
        posts = [e for e in read_journal(journal) if e["method"] == "POST"]
        assert len(posts) <= 1
        assert len(emu.state()["keys"]) == len(posts)
    lines = rotate_lines(tmp_path)
    assert (lines[-1]["outcome"], lines[-1]["phase"]) == ("unknown", "result")
    assert lines[-1]["attempts"] == []  # the resumed run sent nothing for the pair
    assert new_keys(out) == []


def test_without_new_keys_file_rotate_refuses_and_sends_nothing(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    with EmulatorProcess(
        "--seed-keys", str(seed_file(tmp_path, SEEDED)), "--journal", str(journal)
    ) as emu:
        done = rotate(emu, tmp_path, str(keys_file(tmp_path, list(SEEDED))))
        assert done.returncode == 2
        assert "--new-keys-file" in done.stderr
    assert read_journal(journal) == []


def test_rotate_disconnect_cuts_the_old_keys_streams_after_its_delete(tmp_path: Path) -> None:
    from tests.integration.test_disconnect_emulator import write_streams

    journal = tmp_path / "journal.jsonl"
    out = tmp_path / "new-keys.csv"
    key = next(iter(SEEDED))  # channel news, uid 1001
    streams = write_streams(
        tmp_path / "streams.csv",
        [
            ("R1", APP, key, "news", "1001", "", "rtmp", 0),
            ("S1", APP, key, "news", "1001", "", "srt", 0),
            ("W1", APP, key, "news", "1001", "", "whip", 0),  # no key in its URL
            ("X1", APP, key[:-1], "news", "1001", "", "rtmp", 0),  # a prefix of the key
            ("X2", APP, "", "news", "1002", "", "whip", 0),  # same channel, another uid
        ],
    )
    seed = seed_file(tmp_path, SEEDED)
    with EmulatorProcess(
        "--seed-keys", str(seed), "--journal", str(journal), "--live-streams", str(streams)
    ) as emu:
        done = rotate(
            emu, tmp_path, "--app-id", APP, "--regions", "na", "--new-keys-file", str(out),
            "--disconnect", "--key", key,
        )  # fmt: skip
        state = emu.state()
    assert done.returncode == 0, done.stderr[-2000:]
    (row,) = new_keys(out)
    stored = {(k["region"], k["key"]): k for k in state["keys"]}
    assert (stored[("na", row["new_stream_key"])]["channel"], row["uid"]) == ("news", "1001")
    assert {s["sid"] for s in state["streams"]} == {"X1", "X2"}

    text = (tmp_path / "audit.jsonl").read_text(encoding="utf-8")
    records = [json.loads(line) for line in text.splitlines()]
    cut = {r["sid"]: r for r in records if r["event"] == "disconnect"}
    assert {sid: r["outcome"] for sid, r in cut.items()} == dict.fromkeys(
        ("R1", "S1", "W1"), "disconnected"
    )
    assert cut["W1"]["match"] == "channel_uid"
    assert (cut["R1"]["protocol"], cut["S1"]["protocol"]) == ("rtmp", "srt")
    assert all(r["confirm_request_ids"] for r in cut.values())

    # Journal order: one lookup, the DELETE (200), the create, then the cuts.
    entries = read_journal(journal)
    steps = [
        (e["method"], e["path"].rsplit("/", 1)[-1])
        for e in entries
        if not e["path"].endswith("/online-streams")
    ]
    assert steps[:3] == [("GET", key), ("DELETE", key), ("POST", "streamkeys")]
    assert {sid for _, sid in steps[3:]} == {"R1", "S1", "W1"}  # cuts and their confirmations
    assert all(e["status"] == 200 for e in entries if e["method"] in ("DELETE", "POST"))
    listings = [e for e in entries if e["path"].endswith("/online-streams")]
    assert len(listings) == 2  # before the DELETE and after it

    for output in (done.stdout, done.stderr, text):
        assert row["new_stream_key"] not in output


def test_resume_with_disconnect_cuts_streams_of_keys_an_earlier_run_rotated(
    tmp_path: Path,
) -> None:
    """The earlier run rotated the key but died before cutting its streams: the
    resumed run lists and cuts them, and neither deletes nor creates again."""
    from tests.integration.test_disconnect_emulator import write_streams

    journal = tmp_path / "journal.jsonl"
    key = next(iter(SEEDED))  # channel news, uid 1001
    streams = write_streams(
        tmp_path / "streams.csv",
        [
            ("R1", APP, key, "news", "1001", "", "rtmp", 0),
            ("W1", APP, key, "news", "1001", "", "whip", 0),  # tied by the recorded channel/uid
            ("X1", APP, key[:-1], "news", "1001", "", "rtmp", 0),  # a prefix of the key
            ("X2", APP, "", "news", "1002", "", "whip", 0),  # same channel, another uid
        ],
    )
    seed = seed_file(tmp_path, SEEDED)
    args = ("--app-id", APP, "--regions", "na", "--key", key)
    with EmulatorProcess(
        "--seed-keys", str(seed), "--journal", str(journal), "--live-streams", str(streams)
    ) as emu:
        first = rotate(emu, tmp_path, *args, "--new-keys-file", str(tmp_path / "first.csv"))
        sent_before = len(read_journal(journal))
        second = rotate(
            emu, tmp_path, *args, "--new-keys-file", str(tmp_path / "second.csv"),
            "--resume", "--disconnect",
        )  # fmt: skip
        state = emu.state()
    assert first.returncode == 0, first.stderr[-2000:]
    assert second.returncode == 0, second.stderr[-2000:]
    assert {s["sid"] for s in state["streams"]} == {"X1", "X2"}
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    cut = {r["sid"]: r["outcome"] for r in records if r["event"] == "disconnect"}
    assert cut == {"R1": "disconnected", "W1": "disconnected"}
    assert len([r for r in records if r["event"] == "rotate" and r["phase"] == "result"]) == 1
    resumed = read_journal(journal)[sent_before:]
    assert [e for e in resumed if e["key"] is not None] == []  # no GET, DELETE or POST of a key
    assert not any(e["method"] == "POST" for e in resumed)
    assert sum(1 for e in resumed if e["path"].endswith("/online-streams")) == 2
    assert new_keys(tmp_path / "second.csv") == []
