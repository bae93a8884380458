"""revoke --disconnect: GET, DELETE, then cut off the key's live streams (and only those)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from revoker.auth import Credentials
from revoker.disconnect import pushed_with
from revoker.service import RunReport, execute, prepare, revoke_passes
from revoker.settings import ClientSettings, InputSettings, RetrySettings, RunSettings

pytestmark = pytest.mark.usefixtures("respx_transport")

BASE = "https://agora.test"
APP = "app1"
KEY = "leakedKey-AAAA-1111"
OTHER = "otherKey-CCCC-3333"
CHANNEL = "room 1/a"
KEYS_URL = f"/na/v1/projects/{APP}/rtls/ingress/streamkeys/{KEY}"
STREAMS_URL = f"/na/v1/projects/{APP}/rtls/ingress/online-streams"


def stream(sid: str, key: str) -> dict[str, Any]:
    return {"sid": sid, "channel": CHANNEL, "uid": "11", "url": f"rtmp://x/live/{key}"}


def run(tmp_path: Path, *, max_attempts: int = 2) -> tuple[RunReport, list[dict[str, Any]]]:
    settings = RunSettings(
        inputs=InputSettings(keys=(KEY,), app_id=APP, regions=("na",)),
        client=ClientSettings(base_url=BASE, concurrency=2),
        retry=RetrySettings(max_attempts=max_attempts, backoff_base=0.001, backoff_max=0.01),
        max_rps=0,
        audit_log=tmp_path / "audit.jsonl",
        disconnect=True,
    )
    plan = prepare(settings)
    report = execute(
        "revoke",
        settings,
        plan,
        Credentials("cid", "secret"),
        revoke_passes(settings, plan),
        install_signal_handlers=False,
    )
    lines = settings.audit_log.read_text().splitlines()
    return report, [json.loads(line) for line in lines]


def ok(data: Any = None) -> httpx.Response:
    body: dict[str, Any] = {"status": "success"}
    if data is not None:
        body["data"] = data
    return httpx.Response(200, json=body)


def test_deletes_first_then_disconnects_only_streams_pushed_with_the_key(tmp_path: Path) -> None:
    calls: list[str] = []

    def track(name: str, response: httpx.Response) -> Any:
        def side_effect(request: httpx.Request) -> httpx.Response:
            calls.append(name)
            return response

        return side_effect

    with respx.mock(base_url=BASE, assert_all_called=True) as api:
        api.get(KEYS_URL).mock(
            side_effect=track(
                "get", ok({"streamKey": KEY, "channel": CHANNEL, "uid": "11", "createdAt": "1"})
            )
        )
        api.delete(KEYS_URL).mock(side_effect=track("delete", ok()))
        listing = api.get(STREAMS_URL, params={"channel": CHANNEL}).mock(
            side_effect=track(
                "list", ok([stream("S1", KEY), stream("S2", OTHER), stream("S3", KEY + "x")])
            )
        )
        cut = api.delete(f"{STREAMS_URL}/S1").mock(side_effect=track("cut", ok()))
        report, records = run(tmp_path)

    assert calls == ["get", "delete", "list", "cut"]
    assert cut.call_count == 1
    assert b"channel=room%201%2Fa" in listing.calls.last.request.url.query
    assert report.exit_code == 0
    assert "live streams cut off: 1" in report.notes
    assert not any("does not stop a stream" in note for note in report.notes)
    revoke, disconnect = (r for r in records if r["event"] in ("revoke", "disconnect"))
    assert revoke["channel"] == CHANNEL
    assert revoke["lookup"]["outcome"] == "present"
    assert disconnect["event"] == "disconnect"
    assert disconnect["sid"] == "S1"
    assert disconnect["channel"] == CHANNEL
    assert disconnect["outcome"] == "disconnected"
    assert disconnect["request_id"] == disconnect["attempts"][-1]["request_id"]
    assert disconnect["list_request_id"]
    assert disconnect["key_id"].startswith("sha256:")
    assert KEY not in json.dumps(records)  # never the plain key without --reveal-keys
    finished = records[-1]
    assert finished["disconnect"]["counts"] == {"disconnected": 1}


def test_key_unknown_to_get_lists_every_stream_of_the_region(tmp_path: Path) -> None:
    with respx.mock(base_url=BASE, assert_all_called=True) as api:
        api.get(KEYS_URL).mock(return_value=httpx.Response(404, json={"message": "nf"}))
        api.delete(KEYS_URL).mock(return_value=httpx.Response(404, json={"message": "nf"}))
        listing = api.get(STREAMS_URL).mock(return_value=ok([stream("S9", KEY)]))
        api.delete(f"{STREAMS_URL}/S9").mock(
            return_value=httpx.Response(404, json={"message": "gone"})
        )
        report, records = run(tmp_path)
    assert listing.calls.last.request.url.query == b""
    (disconnect,) = (r for r in records if r["event"] == "disconnect")
    assert disconnect["outcome"] == "absent"  # the stream had ended meanwhile
    assert report.exit_code == 0


def test_failed_delete_leaves_streams_alone(tmp_path: Path) -> None:
    with respx.mock(base_url=BASE, assert_all_called=False) as api:
        api.get(KEYS_URL).mock(return_value=ok({"channel": CHANNEL}))
        api.delete(KEYS_URL).mock(return_value=httpx.Response(403, json={"message": "no"}))
        listing = api.get(STREAMS_URL)
        report, records = run(tmp_path)
    assert not listing.called
    assert [r["event"] for r in records[1:-1]] == ["revoke"]
    assert report.exit_code == 1


def test_listing_that_keeps_failing_is_a_failed_disconnect_and_exit_1(tmp_path: Path) -> None:
    with respx.mock(base_url=BASE, assert_all_called=True) as api:
        api.get(KEYS_URL).mock(return_value=ok({"channel": CHANNEL}))
        api.delete(KEYS_URL).mock(return_value=ok())
        listing = api.get(STREAMS_URL).mock(
            return_value=httpx.Response(503, json={"message": "Service overload"})
        )
        report, records = run(tmp_path, max_attempts=3)
    assert listing.call_count == 3  # retried like any GET
    (disconnect,) = (r for r in records if r["event"] == "disconnect")
    assert disconnect["outcome"] == "failed"
    assert disconnect["sid"] is None
    assert "Service overload" in disconnect["message"]
    assert report.exit_code == 1
    assert any("could NOT be cut off" in note for note in report.notes)


def test_pushed_with_matches_the_url_suffix_only() -> None:
    assert pushed_with({"url": "rtmp://h/live/abc"}, "abc")
    assert not pushed_with({"url": "rtmp://h/live/xabc"}, "abc")
    assert not pushed_with({"url": "rtmp://h/live/abcd"}, "abc")
    assert not pushed_with({"sid": "1"}, "abc")


@pytest.mark.integration
def test_cli_disconnect_against_emulator_cuts_only_the_revoked_keys_streams(
    tmp_path: Path,
) -> None:
    from revoker.emulator.process import EmulatorProcess

    seed = tmp_path / "seed.csv"
    seed.write_text(
        "stream_key,app_id,regions,channel,uid\n"
        f"{KEY},{APP},,{CHANNEL},11\n"
        f"{OTHER},{APP},,{CHANNEL},33\n",
        encoding="utf-8",
    )
    live = tmp_path / "live.csv"
    live.write_text(
        "stream_key,app_id,region,channel,uid,sid\n"
        f"{KEY},{APP},na,{CHANNEL},11,SA1\n"
        f"{KEY},{APP},eu,{CHANNEL},11,SA2\n"
        f"{KEY},{APP},cn,{CHANNEL},11,SA3\n"
        f"{OTHER},{APP},na,{CHANNEL},33,SC1\n"
        f"{OTHER},{APP},ap,{CHANNEL},33,SC2\n"
        f"scriptOnlyKey-DDDD,{APP},ap,room9,44,SD1\n",
        encoding="utf-8",
    )
    audit = tmp_path / "audit.jsonl"
    with EmulatorProcess("--seed-keys", str(seed), "--live-streams", str(live)) as emu:
        env = {**os.environ, **emu.client_env()}
        result = subprocess.run(
            [sys.executable, "-m", "revoker", "-q", "revoke", "--disconnect", "--app-id", APP,
             "--key", KEY, "--key", "scriptOnlyKey-DDDD", "--audit-log", str(audit),
             "--output", "json"],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        state = emu.state()
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["disconnect"]["counts"] == {"disconnected": 4}
    assert "live streams cut off: 4" in summary["notes"]
    assert {k["key"] for k in state["keys"]} == {OTHER}
    assert sorted(s["sid"] for s in state["streams"]) == ["SC1", "SC2"]  # untouched
    sids = sorted(
        json.loads(line)["sid"]
        for line in audit.read_text().splitlines()
        if json.loads(line)["event"] == "disconnect"
    )
    assert sids == ["SA1", "SA2", "SA3", "SD1"]


def test_odd_lookup_data_still_deletes_the_key(tmp_path: Path) -> None:
    with respx.mock(base_url=BASE) as api:
        api.get(KEYS_URL).respond(200, json={"status": "success", "data": "oops"})
        delete = api.delete(KEYS_URL).mock(return_value=ok())
        api.get(STREAMS_URL).mock(return_value=ok([]))
        report, records = run(tmp_path)
    assert delete.call_count == 1
    assert report.exit_code == 0
    assert next(r for r in records if r["event"] == "revoke")["outcome"] == "revoked"


@pytest.mark.parametrize("sid", ["", "..", None, "a/b"])
def test_an_unusable_sid_from_the_server_is_never_sent(tmp_path: Path, sid: Any) -> None:
    with respx.mock(base_url=BASE, assert_all_called=False) as api:
        api.get(KEYS_URL).mock(return_value=ok({"channel": CHANNEL, "uid": "11"}))
        api.delete(KEYS_URL).mock(return_value=ok())
        api.get(STREAMS_URL).mock(return_value=ok([stream(sid, KEY)]))
        cuts = api.delete(url__startswith=f"{BASE}{STREAMS_URL}").mock(return_value=ok())
        report, records = run(tmp_path)
    assert cuts.call_count == 0
    assert report.exit_code == 1
    (line,) = (r for r in records if r["event"] == "disconnect")
    assert line["outcome"] == "failed"
    assert "unusable stream SID" in line["message"]
