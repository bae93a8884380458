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
