"""revoke --disconnect and revoker streams end to end: the CLI against the emulator.

Every push form and its look-alikes; the emulator's journal shows what was cut
and in which order.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from revoker.emulator.process import EmulatorProcess

pytestmark = pytest.mark.integration

APP = "9d2498880e934632b38b0a68fa2f1622"
OTHER_APP = "0ther0app0000000000000000000001"
K_RTMP = "leak-rtmp-0001-AAAA"
K_RTMPS = "leak-rtmps-0002-BBBB"
K_SRT = "leak-srt-0003-CCCC"
K_SRTC = "leak-srtc-0004-DD_D"
K_WHIP = "leak-whip-0005-EEEE"
SAFE = "safe-key-0006-FFFF"
LEAKED = [K_RTMP, K_RTMPS, K_SRT, K_SRTC, K_WHIP]

KEYS_CSV = (
    "stream_key,app_id,regions,channel,uid\n"
    + "".join(f"{k},{APP},na,room-{i},{i}\n" for i, k in enumerate(LEAKED[:4]))
    + f"{K_WHIP},{APP},na,whip-room,42\n"
    + f"{SAFE},{APP},na,whip-room,42\n"
)

# sid, app, key, channel, uid, url, protocol, start_after_lists
STREAMS = [
    ("R1", APP, K_RTMP, "room-0", "0", "", "rtmp", 0),
    ("R2", APP, K_RTMP, "room-0", "0", f"rtmp://backup.example.com/live/{K_RTMP}", "", 0),
    ("R3", APP, K_RTMPS, "room-1", "1", f"rtmps://live.example.com/custom-app/{K_RTMPS}", "", 0),
    ("R4", APP, K_SRT, "room-2", "2", "", "srt", 0),
    ("R5", APP, K_SRT, "room-2", "2", f"srt://x.example.com:6001?streamid={K_SRT}?h=x", "", 0),
    ("R6", APP, K_SRTC, "room-3", "3", "", "srt-custom", 0),
    (
        "R7",
        APP,
        K_SRTC,
        "room-3",
        "3",
        "srt://x.example.com:6001?streamid=%23%21%3A%3Ah%3Dx%2Cr%3Dleak-srtc-0004-DD%5FD",
        "",
        0,
    ),
    ("W1", APP, K_WHIP, "whip-room", "42", "", "whip", 0),
    # Starts after two listings: `streams`'s, then revoke's first one.
    ("LATE", APP, K_SRT, "room-2", "2", "", "srt", 2),
    # look-alikes, never cut:
    ("X1", APP, K_RTMP[:-1], "room-0", "0", "", "rtmp", 0),  # a prefix of a leaked key
    ("X2", APP, SAFE, "whip-room", "42", "", "rtmp", 0),  # same channel+uid, another key
    ("X3", APP, "", "whip-room", "43", "", "whip", 0),  # WHIP, same channel, other uid
    ("X4", OTHER_APP, K_RTMP, "room-0", "0", "", "rtmp", 0),  # same key, another app ID
]
CUT = {"R1", "R2", "R3", "R4", "R5", "R6", "R7", "W1", "LATE"}


def write_streams(path: Path, rows: list[tuple[Any, ...]], extra: str = "") -> Path:
    header = "sid,app_id,region,stream_key,channel,uid,url,protocol,start_after_lists"
    lines = [header + ("," + extra if extra else "")]
    for row in rows:
        sid, app, key, channel, uid, url, protocol, after, *more = row
        key = key or "whip-bearer-unknown"
        cells = [sid, app, "na", key, channel, uid, url, protocol, str(after), *map(str, more)]
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_cli(
    emu: EmulatorProcess, tmp_path: Path, command: str, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGORA_", "REVOKER_"))}
    env.update(emu.client_env())
    extra = ["--audit-log", str(tmp_path / "audit.jsonl")] if command == "revoke" else []
    return subprocess.run(
        [sys.executable, "-m", "revoker", "-q", command, "--app-id", APP, "--regions", "na",
         "--output", "json", *extra, *args],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip


def keys_args(keys: list[str]) -> list[str]:
    return [arg for key in keys for arg in ("--key", key)]


def audit(tmp_path: Path, event: str) -> list[dict[str, Any]]:
    text = (tmp_path / "audit.jsonl").read_text()
    return [r for r in map(json.loads, text.splitlines()) if r["event"] == event]


def journal(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def emulator(tmp_path: Path, streams: Path, *args: str) -> EmulatorProcess:
    keys = tmp_path / "keys.csv"
    keys.write_text(KEYS_CSV, encoding="utf-8")
    return EmulatorProcess(
        "--seed-keys", str(keys), "--live-streams", str(streams),
        "--journal", str(tmp_path / "journal.jsonl"), *args,
    )  # fmt: skip


def test_every_push_form_is_cut_after_its_keys_delete_and_no_look_alike_is(
    tmp_path: Path,
) -> None:
    streams = write_streams(tmp_path / "streams.csv", STREAMS)
    with emulator(tmp_path, streams) as emu:
        before = run_cli(emu, tmp_path, "streams", *keys_args(LEAKED))
        result = run_cli(emu, tmp_path, "revoke", "--disconnect", *keys_args(LEAKED))
        after = run_cli(emu, tmp_path, "streams", *keys_args(LEAKED))
        state = emu.state()
    assert result.returncode == 0, result.stderr
    lines = audit(tmp_path, "disconnect")
    assert {r["sid"] for r in lines} == CUT
    assert all(r["outcome"] == "disconnected" and r["confirm_request_ids"] for r in lines)
    by_sid = {r["sid"]: r for r in lines}
    assert by_sid["W1"]["match"] == "channel_uid"
    assert {by_sid[s]["protocol"] for s in ("R4", "R5", "R6", "R7")} == {"srt"}
    assert (by_sid["R3"]["protocol"], by_sid["W1"]["protocol"]) == ("rtmps", "whip")
    assert by_sid["LATE"]["listing"] == "after"
    assert {s["sid"] for s in state["streams"]} == {"X1", "X2", "X3", "X4"}

    # Each cut only after its key's DELETE answered, in the journal's order.
    owner = {sid: key for sid, _, key, *_ in STREAMS}
    deleted_at: dict[str, int] = {}
    listings = 0
    for index, record in enumerate(journal(tmp_path / "journal.jsonl")):
        if record["method"] == "DELETE" and record["key"]:
            assert record["status"] == 200
            deleted_at[record["key"]] = index
        if record["method"] == "DELETE" and record["sid"]:
            assert record["sid"] in CUT
            assert deleted_at[owner[record["sid"]]] < index
        if record["method"] == "GET" and record["path"].endswith("/online-streams"):
            listings += 1
    assert listings == 2 + 2  # revoke: before and after; each streams run: one

    assert before.returncode == 1
    seen = json.loads(before.stdout)
    assert {s["sid"] for s in seen["streams"]} == CUT - {"LATE"}
    assert json.loads(after.stdout)["live_matched"] == 0
    assert after.returncode == 0


def test_asynchronous_disconnect_is_confirmed_with_request_ids(tmp_path: Path) -> None:
    streams = write_streams(tmp_path / "streams.csv", [STREAMS[0]])
    with emulator(tmp_path, streams, "--disconnect-delay-ms", "2000") as emu:
        result = run_cli(emu, tmp_path, "revoke", "--disconnect", "--key", K_RTMP)
    assert result.returncode == 0, result.stderr
    (line,) = audit(tmp_path, "disconnect")
    assert line["outcome"] == "disconnected"
    polls = [
        r for r in journal(tmp_path / "journal.jsonl") if r["method"] == "GET" and r["sid"] == "R1"
    ]
    assert [p["request_id"] for p in polls] == line["confirm_request_ids"]
    assert len(polls) >= 2  # still listed at first: the disconnect is asynchronous
    assert line["confirmed_by"] == polls[-1]["request_id"]


def test_a_stream_that_never_goes_away_ends_failed_and_exit_1(tmp_path: Path) -> None:
    row = (*STREAMS[0], "true")
    streams = write_streams(tmp_path / "streams.csv", [row], extra="ignore_disconnect")
    with emulator(tmp_path, streams) as emu:
        result = run_cli(
            emu, tmp_path, "revoke", "--disconnect", "--disconnect-timeout", "1", "--key", K_RTMP
        )
    assert result.returncode == 1
    (line,) = audit(tmp_path, "disconnect")
    assert line["outcome"] == "failed"
    assert "still live" in line["message"]
    cuts = [r for r in journal(tmp_path / "journal.jsonl") if r["method"] == "DELETE" and r["sid"]]
    assert len(cuts) == 2  # re-sent once


def test_a_failed_listing_is_a_failed_line_never_no_streams(tmp_path: Path) -> None:
    streams = write_streams(tmp_path / "streams.csv", [STREAMS[0]])
    with emulator(tmp_path, streams, "--quota-exhausted-app", APP) as emu:
        result = run_cli(
            emu, tmp_path, "revoke", "--disconnect", "--max-attempts", "1", "--key", K_RTMP
        )
        state = emu.state()
    assert result.returncode == 1
    lines = audit(tmp_path, "disconnect")
    assert lines
    assert all(r["outcome"] == "failed" and r["sid"] is None for r in lines)
    assert "Resources quota limit exceeded." in lines[0]["message"]
    assert audit(tmp_path, "revoke")[0]["outcome"] == "revoked"
    assert {s["sid"] for s in state["streams"]} == {"R1"}


def test_resume_with_disconnect_cuts_streams_of_keys_deleted_earlier(tmp_path: Path) -> None:
    streams = write_streams(tmp_path / "streams.csv", [STREAMS[0], STREAMS[3]])
    with emulator(tmp_path, streams) as emu:
        first = run_cli(emu, tmp_path, "revoke", *keys_args([K_RTMP, K_SRT]))
        second = run_cli(
            emu, tmp_path, "revoke", "--resume", "--disconnect", *keys_args([K_RTMP, K_SRT])
        )
        state = emu.state()
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert {r["sid"] for r in audit(tmp_path, "disconnect")} == {"R1", "R4"}
    assert len(audit(tmp_path, "revoke")) == 2  # the second run deleted nothing again
    key_deletes = [r for r in journal(tmp_path / "journal.jsonl") if r["method"] == "DELETE"]
    assert sum(1 for r in key_deletes if r["key"]) == 2
    assert state["streams"] == []


K_B64 = "a/b+cdEFgh/ij=="  # standard base64, as a script may generate
K_PCT = "p%20q-raw-0001"  # a literal %20, not a space
K_QH = "q?r#s-0001"
K_LEFT = "left-key-0007"
INNOCENT = "otherKey-9999"
RAW_KEYS_CSV = (
    "stream_key,app_id,regions,channel,uid\n"
    f"{K_B64},{APP},na,room-a,1\n{K_PCT},{APP},na,room-p,2\n"
    f"{K_QH},{APP},na,room-q,3\n{K_LEFT},{APP},na,room-l,7\n"
    f"{INNOCENT},{APP},na,room-a,1\n"
)
RAW_STREAMS = [
    ("T1", APP, K_B64, "room-a", "1", f"rtmp://h.example.com/live/{K_B64}", "", 0),
    ("T2", APP, K_B64, "room-a", "1", f"rtmps://h.example.com/app/{K_B64}/", "", 0),
    ("T3", APP, K_B64, "room-a", "1", f"srt://x.example.com:6001?streamid={K_B64}?h=x", "", 0),
    ("T4", APP, K_PCT, "room-p", "2", f"rtmp://h.example.com/live/{K_PCT}", "", 0),
    ("T5", APP, K_PCT, "room-p", "2", f"srt://x.example.com:6001?streamid={K_PCT}", "", 0),
    ("T6", APP, K_QH, "room-q", "3", f"rtmp://h.example.com/live/{K_QH}", "", 0),
    ("T7", APP, K_QH, "room-q", "3", f"rtmp://h.example.com/{K_QH}", "", 0),
    ("T8", APP, K_PCT, "room-p", "2", f"rtmp://backup.example.com/live/{K_PCT}", "", 0),
    # Innocent: another key in a lone segment or before trailing slashes, same channel and uid.
    ("I1", APP, INNOCENT, "room-a", "1", f"rtmp://h.example.com/{INNOCENT}", "", 0),
    ("I2", APP, INNOCENT, "room-p", "2", f"rtmp://h.example.com/live/{INNOCENT}//", "", 0),
    # The only stream with K_LEFT's channel and uid names something else: said, not cut.
    ("L1", APP, INNOCENT, "room-l", "7", "rtmp://h.example.com/live/unreadable-form", "", 0),
]


def test_raw_reserved_characters_are_matched_innocents_kept_and_a_left_stream_said(
    tmp_path: Path,
) -> None:
    streams = write_streams(tmp_path / "streams.csv", RAW_STREAMS)
    keys = tmp_path / "raw-keys.csv"
    keys.write_text(RAW_KEYS_CSV, encoding="utf-8")
    leaked = [K_B64, K_PCT, K_QH, K_LEFT]
    with EmulatorProcess(
        "--seed-keys", str(keys), "--live-streams", str(streams),
        "--journal", str(tmp_path / "journal.jsonl"),
    ) as emu:  # fmt: skip
        seen = run_cli(emu, tmp_path, "streams", *keys_args(leaked))
        result = run_cli(emu, tmp_path, "revoke", "--disconnect", *keys_args(leaked))
        state = emu.state()
    assert seen.returncode == 1
    listed = json.loads(seen.stdout)
    assert {s["sid"] for s in listed["streams"]} == {f"T{i}" for i in range(1, 9)}
    assert [(r["sid"], r["channel"]) for r in listed["left_running"]] == [("L1", "room-l")]
    lines = {r["sid"]: r for r in audit(tmp_path, "disconnect")}
    assert {s for s, r in lines.items() if r["outcome"] == "disconnected"} == {
        f"T{i}" for i in range(1, 9)
    }
    assert {s["sid"] for s in state["streams"]} == {"I1", "I2", "L1"}
    left = lines["L1"]
    assert (left["outcome"], left["left_running"]) == ("failed", True)
    assert "left running" in left["message"]
    assert left["key_hint"] != K_LEFT
    assert "I1" not in lines
    assert "I2" not in lines
    assert result.returncode == 1  # a stream with a leaked key's channel and uid still runs
