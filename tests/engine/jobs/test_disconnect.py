"""revoke --disconnect: list once per (app, region), DELETE, cut the key's streams, confirm."""

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

from revoker.audit.merge import build_report
from revoker.credentials import Credentials
from revoker.engine.jobs.keyverdicts import KeyLedger
from revoker.engine.jobs.scout import Scout
from revoker.engine.run import execute, prepare, revoke_passes
from revoker.engine.sched.retry import Backoff, RetryPolicy
from revoker.results import RunReport
from revoker.settings import ClientSettings, InputSettings, RetrySettings, RunSettings
from tests.conftest import NO_ECHO, api_not_found, mock_transport

BASE = "https://agora.test"
APP = "app1"
KEY = "leakedKey-AAAA-1111"
OTHER = "otherKey-CCCC-3333"
CHANNEL = "room 1/a"
KEYS_URL = f"/na/v1/projects/{APP}/rtls/ingress/streamkeys/{KEY}"
STREAMS_URL = f"/na/v1/projects/{APP}/rtls/ingress/online-streams"


def stream(sid: str, key: str) -> dict[str, Any]:
    return {"sid": sid, "channel": CHANNEL, "uid": "11", "url": f"rtmp://x/live/{key}"}


def run(
    tmp_path: Path,
    *,
    max_attempts: int = 2,
    timeout: float = 2.0,
    resume: bool = False,
    max_rps: float = 0,
    keys: tuple[str, ...] = (KEY,),
    check_apps: bool = False,
) -> tuple[RunReport, list[dict[str, Any]]]:
    settings = RunSettings(
        inputs=InputSettings(keys=keys, app_id=APP, regions=("na",)),
        client=ClientSettings(base_url=BASE, concurrency=2),
        retry=RetrySettings(max_attempts=max_attempts),
        max_rps=max_rps,
        audit_log=tmp_path / "audit.jsonl",
        disconnect=True,
        disconnect_timeout=timeout,
        resume=resume,
    )
    plan = prepare(settings, resume_events=("revoke",))
    report = execute(
        "revoke",
        settings,
        plan,
        Credentials("cid", "secret"),
        revoke_passes(settings, plan),
        transport=mock_transport(),
        install_signal_handlers=False,
        retry=RetryPolicy(max_attempts, Backoff(0.001, 0.01)),
        # The ledger brings the listings before the first DELETE (and the scout).
        ledger=KeyLedger("revoke") if check_apps else None,
    )
    lines = settings.audit_log.read_text().splitlines()
    return report, [json.loads(line) for line in lines]


def ok(data: Any = None) -> httpx.Response:
    body: dict[str, Any] = {"status": "success"}
    if data is not None:
        body["data"] = data
    return httpx.Response(200, json=body)


def sid_url(sid: str) -> str:
    return f"{STREAMS_URL}/{sid}"


def test_lists_once_deletes_then_cuts_only_the_keys_streams_and_confirms(tmp_path: Path) -> None:
    calls: list[str] = []

    def track(name: str, response: httpx.Response) -> Any:
        def side_effect(request: httpx.Request) -> httpx.Response:
            calls.append(name)
            return response

        return side_effect

    streams = [stream("S1", KEY), stream("S2", OTHER), stream("S3", KEY + "x")]
    with respx.mock(base_url=BASE, assert_all_called=True) as api:
        api.get(KEYS_URL).mock(
            side_effect=track(
                "get", ok({"streamKey": KEY, "channel": CHANNEL, "uid": "11", "createdAt": "1"})
            )
        )
        api.delete(KEYS_URL).mock(side_effect=track("delete", ok()))
        listing = api.get(STREAMS_URL).mock(side_effect=track("list", ok(streams)))
        cut = api.delete(sid_url("S1")).mock(side_effect=track("cut", ok()))
        api.get(sid_url("S1")).mock(side_effect=track("confirm", ok([])))
        report, records = run(tmp_path)

    assert calls.index("delete") < calls.index("cut") < calls.index("confirm")
    assert calls.count("list") == 2  # once before the DELETEs, once after the last one
    assert all(call.request.url.query == b"" for call in listing.calls)  # every channel
    assert cut.call_count == 1
    assert report.exit_code == 0
    assert "live streams cut off: 1" in report.notes
    revoke, disconnect = (r for r in records if r["event"] in ("revoke", "disconnect"))
    assert revoke["channel"] == CHANNEL
    assert revoke["lookup"]["outcome"] == "present"
    assert disconnect["sid"] == "S1"
    assert disconnect["outcome"] == "disconnected"
    assert (disconnect["match"], disconnect["protocol"]) == ("url", "rtmp")
    assert disconnect["request_id"] == disconnect["attempts"][-1]["request_id"]
    assert disconnect["list_request_id"]
    assert disconnect["confirmed_by"] == disconnect["confirm_request_ids"][-1]
    assert disconnect["key_id"].startswith("sha256:")
    assert KEY not in json.dumps(records)  # never the plain key without --reveal-keys
    assert records[-1]["disconnect"]["counts"] == {"disconnected": 1}


def test_a_listed_streams_fields_are_recorded_with_every_key_of_the_run_masked(
    tmp_path: Path,
) -> None:
    # The listing names no key: a stream of KEY whose channel, uid and SID are OTHER (a
    # key of this run too) must not put OTHER in the line of KEY's cut.
    listed = {"sid": f"S-{OTHER}", "channel": OTHER, "uid": OTHER, "url": f"rtmp://x/live/{KEY}"}
    with respx.mock(base_url=BASE, assert_all_called=False) as api:
        api.get(url__regex=r".*/streamkeys/.+").mock(side_effect=api_not_found)
        api.delete(url__regex=r".*/streamkeys/.+").mock(return_value=ok())
        api.get(STREAMS_URL).mock(return_value=ok([listed]))
        api.delete(sid_url(f"S-{OTHER}")).mock(return_value=ok())
        api.get(sid_url(f"S-{OTHER}")).mock(return_value=ok([]))
        _, records = run(tmp_path, keys=(KEY, OTHER))
    [cut] = [r for r in records if r["event"] == "disconnect"]
    assert (cut["sid"], cut["channel"], cut["stream_uid"]) == ("S-***", "***", "***")
    assert OTHER not in json.dumps(records)


def test_a_foreign_404_on_the_key_is_failed_and_no_stream_is_touched(tmp_path: Path) -> None:
    html = httpx.Response(404, text="<html>404 Not Found</html>")
    with respx.mock(base_url=BASE, assert_all_called=False) as api:
        api.get(KEYS_URL).mock(return_value=html)
        api.delete(KEYS_URL).mock(return_value=html)
        api.get(STREAMS_URL).mock(return_value=ok([stream("S9", KEY)]))
        cut = api.delete(sid_url("S9"))
        report, records = run(tmp_path)
    assert report.exit_code == 1
    (revoke,) = (r for r in records if r["event"] == "revoke")
    assert (revoke["outcome"], revoke["lookup"]["outcome"]) == ("failed", "failed")
    assert not cut.called


def test_a_key_unknown_to_get_still_cuts_streams_naming_it(tmp_path: Path) -> None:
    with respx.mock(base_url=BASE, assert_all_called=True) as api:
        api.get(KEYS_URL).mock(side_effect=api_not_found)
        api.delete(KEYS_URL).mock(side_effect=api_not_found)
        api.get(STREAMS_URL).mock(return_value=ok([stream("S9", KEY)]))
        api.delete(sid_url("S9")).mock(side_effect=api_not_found)
        report, records = run(tmp_path)
    (disconnect,) = (r for r in records if r["event"] == "disconnect")
    assert disconnect["outcome"] == "absent"  # the stream had ended meanwhile
    assert report.exit_code == 0


def test_failed_delete_leaves_streams_alone(tmp_path: Path) -> None:
    with respx.mock(base_url=BASE, assert_all_called=False) as api:
        api.get(KEYS_URL).mock(return_value=ok({"channel": CHANNEL}))
        api.delete(KEYS_URL).mock(return_value=httpx.Response(403, json={"message": "no"}))
        api.get(STREAMS_URL).mock(return_value=ok([stream("S1", KEY)]))
        cuts = api.delete(sid_url("S1"))
        report, records = run(tmp_path)
    assert not cuts.called
    assert not [r for r in records if r["event"] == "disconnect"]
    assert sorted(r["event"] for r in records[1:-1]) == ["listing", "revoke"]
    assert report.exit_code == 1


def test_listing_that_keeps_failing_is_a_failed_disconnect_and_exit_1(tmp_path: Path) -> None:
    with respx.mock(base_url=BASE, assert_all_called=True) as api:
        api.get(KEYS_URL).mock(return_value=ok({"channel": CHANNEL}))
        api.delete(KEYS_URL).mock(return_value=ok())
        listing = api.get(STREAMS_URL).mock(
            return_value=httpx.Response(503, json={"message": "Service overload"})
        )
        report, records = run(tmp_path, max_attempts=3)
    assert listing.call_count == 6  # both listings, each retried like any GET
    lines = [r for r in records if r["event"] == "disconnect"]
    assert [(r["outcome"], r["sid"], r["listing"]) for r in lines] == [
        ("failed", None, "before"),
        ("failed", None, "after"),
    ]
    assert all("Service overload" in r["message"] for r in lines)
    assert report.exit_code == 1
    assert any("could NOT be cut off" in note for note in report.notes)


def test_a_stream_that_never_goes_away_is_resent_once_then_failed(tmp_path: Path) -> None:
    with respx.mock(base_url=BASE, assert_all_called=True) as api:
        api.get(KEYS_URL).mock(return_value=ok({"channel": CHANNEL, "uid": "11"}))
        api.delete(KEYS_URL).mock(return_value=ok())
        api.get(STREAMS_URL).mock(return_value=ok([stream("S1", KEY)]))
        cut = api.delete(sid_url("S1")).mock(return_value=ok())
        polls = api.get(sid_url("S1")).mock(return_value=ok([stream("S1", KEY)]))
        report, records = run(tmp_path, timeout=0.6)
    assert cut.call_count == 2  # the force-disconnect, re-sent once
    (line,) = (r for r in records if r["event"] == "disconnect")
    assert line["outcome"] == "failed"
    assert "still live" in line["message"]
    assert len(line["confirm_request_ids"]) == polls.call_count
    assert report.exit_code == 1


def test_a_failed_lookup_is_a_failed_line_and_url_named_streams_are_still_cut(
    tmp_path: Path,
) -> None:
    with respx.mock(base_url=BASE, assert_all_called=True) as api:
        api.get(KEYS_URL).mock(return_value=httpx.Response(500, json={"message": "Internal"}))
        api.delete(KEYS_URL).mock(return_value=ok())
        api.get(STREAMS_URL).mock(return_value=ok([stream("S1", KEY)]))
        api.delete(sid_url("S1")).mock(return_value=ok())
        api.get(sid_url("S1")).mock(return_value=ok([]))
        report, records = run(tmp_path, max_attempts=1)
    lines = {r["sid"]: r for r in records if r["event"] == "disconnect"}
    assert lines["S1"]["outcome"] == "disconnected"
    assert lines[None]["outcome"] == "failed"
    assert "key lookup failed" in lines[None]["message"]
    assert report.exit_code == 1


def test_a_confirming_404_means_gone(tmp_path: Path) -> None:
    with respx.mock(base_url=BASE, assert_all_called=True) as api:
        api.get(KEYS_URL).mock(return_value=ok({"channel": CHANNEL, "uid": "11"}))
        api.delete(KEYS_URL).mock(return_value=ok())
        api.get(STREAMS_URL).mock(return_value=ok([stream("S1", KEY)]))
        api.delete(sid_url("S1")).mock(return_value=ok())
        api.get(sid_url("S1")).mock(side_effect=api_not_found)
        report, records = run(tmp_path)
    (line,) = (r for r in records if r["event"] == "disconnect")
    assert line["outcome"] == "disconnected"
    assert report.exit_code == 0


NOT_THE_API = "not an answer of the Media Gateway API (check --base-url)"
# The API's shape, but not its answer: no X-Request-ID, or another request's.
PROXY_HEADERS = [NO_ECHO, {"X-Request-ID": "someone-else"}]
PROXY_IDS = ["no-request-id", "other-id"]


@pytest.mark.parametrize("headers", PROXY_HEADERS, ids=PROXY_IDS)
def test_a_listing_that_is_not_the_apis_answer_is_failed_and_its_sids_are_never_cut(
    tmp_path: Path, headers: dict[str, str]
) -> None:
    fake = httpx.Response(
        200, json={"status": "success", "data": [stream("S9", KEY)]}, headers=headers
    )
    with respx.mock(base_url=BASE, assert_all_called=False) as api:
        api.get(KEYS_URL).mock(return_value=ok({"channel": CHANNEL, "uid": "11"}))
        api.delete(KEYS_URL).mock(return_value=ok())
        api.get(STREAMS_URL).mock(return_value=fake)
        cut = api.delete(sid_url("S9")).mock(return_value=ok())
        api.get(sid_url("S9")).mock(return_value=ok([]))
        report, records = run(tmp_path)
    assert not cut.called
    lines = [r for r in records if r["event"] == "disconnect"]
    assert [(r["outcome"], r["sid"], r["listing"]) for r in lines] == [
        ("failed", None, "before"),
        ("failed", None, "after"),
    ]
    assert all(NOT_THE_API in r["message"] for r in lines)
    assert report.exit_code == 1


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, json={"status": "success"}, headers=NO_ECHO),
        httpx.Response(200, text="<html>ok</html>"),
    ],
    ids=["no-request-id", "html"],
)
def test_a_force_disconnect_answered_by_a_200_not_the_apis_is_not_disconnected(
    tmp_path: Path, answer: httpx.Response
) -> None:
    with respx.mock(base_url=BASE, assert_all_called=False) as api:
        api.get(KEYS_URL).mock(return_value=ok({"channel": CHANNEL, "uid": "11"}))
        api.delete(KEYS_URL).mock(return_value=ok())
        api.get(STREAMS_URL).mock(return_value=ok([stream("S1", KEY)]))
        api.delete(sid_url("S1")).mock(return_value=answer)
        api.get(sid_url("S1")).mock(return_value=ok([stream("S1", KEY)]))  # still live
        report, records = run(tmp_path, timeout=0.6)
    (line,) = (r for r in records if r["event"] == "disconnect")
    assert (line["sid"], line["outcome"], line["http_status"]) == ("S1", "failed", 200)
    assert line["message"] == NOT_THE_API
    assert "confirmed_by" not in line
    assert any(note.startswith("live streams cut off: 0") for note in report.notes)
    assert report.exit_code == 1


@pytest.mark.parametrize("headers", PROXY_HEADERS, ids=PROXY_IDS)
def test_a_confirming_empty_200_that_is_not_the_apis_answer_does_not_mean_gone(
    tmp_path: Path, headers: dict[str, str]
) -> None:
    empty = httpx.Response(200, json={"status": "success", "data": []}, headers=headers)
    with respx.mock(base_url=BASE, assert_all_called=True) as api:
        api.get(KEYS_URL).mock(return_value=ok({"channel": CHANNEL, "uid": "11"}))
        api.delete(KEYS_URL).mock(return_value=ok())
        api.get(STREAMS_URL).mock(return_value=ok([stream("S1", KEY)]))
        cut = api.delete(sid_url("S1")).mock(return_value=ok())
        api.get(sid_url("S1")).mock(return_value=empty)
        report, records = run(tmp_path, timeout=0.6)
    assert cut.call_count == 2  # never confirmed: re-sent once, as for a stream still live
    (line,) = (r for r in records if r["event"] == "disconnect")
    assert line["outcome"] == "failed"
    assert line["message"].startswith(f"could not confirm: {NOT_THE_API}")
    assert "confirmed_by" not in line
    assert report.exit_code == 1


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
             "--output", "json", "--absent-ok"],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        state = emu.state()
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["disconnect"]["counts"] == {
        "absent": 0,
        "disconnected": 4,
        "failed": 0,
        "not_attempted": 0,
    }
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
        api.get(url__startswith=f"{BASE}{STREAMS_URL}/").mock(return_value=ok([]))
        report, records = run(tmp_path)
    assert cuts.call_count == 0
    assert report.exit_code == 1
    (line,) = (r for r in records if r["event"] == "disconnect")
    assert line["outcome"] == "failed"
    assert "unusable stream SID" in line["message"]


def test_a_cut_left_unconfirmed_is_settled_by_a_later_runs_listing(tmp_path: Path) -> None:
    """A stop (or failing GETs) while a cut was confirmed leaves it failed; the resumed
    run's listing, where the SID is gone, confirms it, and the report passes."""
    with respx.mock(base_url=BASE, assert_all_called=True) as api:
        api.get(KEYS_URL).mock(return_value=ok({"channel": CHANNEL, "uid": "11"}))
        api.delete(KEYS_URL).mock(return_value=ok())
        api.get(STREAMS_URL).mock(return_value=ok([stream("S1", KEY)]))
        api.delete(sid_url("S1")).mock(return_value=ok())
        api.get(sid_url("S1")).mock(return_value=httpx.Response(503, json={"message": "x"}))
        report, records = run(tmp_path, timeout=0.3, max_attempts=1)
    (first,) = (r for r in records if r["event"] == "disconnect")
    assert first["outcome"] == "failed"
    assert first["message"].startswith("could not confirm")
    assert build_report([tmp_path / "audit.jsonl"]).exit_code == 1

    with respx.mock(base_url=BASE, assert_all_called=False) as api:
        listing = api.get(STREAMS_URL).mock(return_value=ok([stream("S9", OTHER)]))
        cut = api.delete(url__regex=".*online-streams/.*").mock(return_value=ok())
        report, records = run(tmp_path, resume=True)
    assert cut.call_count == 0
    settled = [r for r in records if r["event"] == "disconnect"][-1]
    assert (settled["sid"], settled["outcome"]) == ("S1", "disconnected")
    assert settled["confirmed_by"] == listing.calls[0].request.headers["X-Request-ID"]
    assert settled["prior_run_id"] == first["run_id"]
    assert report.exit_code == 0
    merged = build_report([tmp_path / "audit.jsonl"])
    assert merged.exit_code == 0, merged.verdict()


def test_a_force_disconnect_goes_ahead_of_the_delete_slots_booked_already(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from revoker.engine.sched.pacing import Pacer

    fronts: list[str] = []
    book_front = Pacer.book_front

    def spy(self: Pacer) -> Any:
        fronts.append("front")
        return book_front(self)

    monkeypatch.setattr(Pacer, "book_front", spy)
    with respx.mock(base_url=BASE, assert_all_called=True) as api:
        api.get(KEYS_URL).mock(return_value=ok({"channel": CHANNEL, "uid": "11"}))
        api.delete(KEYS_URL).mock(return_value=ok())
        api.get(STREAMS_URL).mock(return_value=ok([stream("S1", KEY)]))
        cut = api.delete(sid_url("S1")).mock(return_value=ok())
        api.get(sid_url("S1")).mock(return_value=ok([]))
        report, _ = run(tmp_path, max_rps=1000)
    assert cut.call_count == 1
    assert fronts == ["front"]  # the cut, and only the cut, took the front of the line
    assert report.exit_code == 0


@pytest.mark.parametrize("scout_breaks", [False, True], ids=["scouted", "scout-failed"])
def test_a_whip_stream_is_cut_with_one_lookup_of_the_key_even_if_the_scout_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scout_breaks: bool
) -> None:
    scouting: list[str] = []
    real_run = Scout.run

    async def spied(self: Scout) -> None:
        scouting.append("run")
        if scout_breaks:
            raise RuntimeError("a bug in the scout")
        await real_run(self)

    monkeypatch.setattr(Scout, "run", spied)
    whip = {"sid": "W1", "channel": CHANNEL, "uid": "11", "url": "https://h/whip"}
    with respx.mock(base_url=BASE, assert_all_called=True) as api:
        lookup = api.get(KEYS_URL).mock(return_value=ok({"channel": CHANNEL, "uid": "11"}))
        api.delete(KEYS_URL).mock(return_value=ok())
        api.get(STREAMS_URL).mock(side_effect=[ok([whip]), ok([])])
        cut = api.delete(sid_url("W1")).mock(return_value=ok())
        api.get(sid_url("W1")).mock(return_value=ok([]))
        report, records = run(tmp_path, check_apps=True)
    assert scouting == ["run"]
    assert report.exit_code == 0
    assert lookup.call_count == 1  # the scout's GET is the pair's lookup, or the pair's own
    assert cut.call_count == 1
    (line,) = (r for r in records if r["event"] == "disconnect")
    assert (line["outcome"], line["match"]) == ("disconnected", "channel_uid")


def test_a_listing_line_the_audit_log_refuses_halts_the_run_and_cuts_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from revoker.audit.log import AuditLog
    from revoker.errors import AuditWriteError
    from revoker.results import HaltReason

    real = AuditLog.event

    def refuse_listings(self: AuditLog, event: str, **fields: Any) -> None:
        if event == "listing":
            raise AuditWriteError("disk full")
        real(self, event, **fields)

    monkeypatch.setattr(AuditLog, "event", refuse_listings)
    with respx.mock(base_url=BASE, assert_all_called=False) as api:
        api.get(KEYS_URL).mock(return_value=ok({"streamKey": KEY, "channel": CHANNEL, "uid": "11"}))
        api.delete(KEYS_URL).mock(return_value=ok())
        api.get(STREAMS_URL).mock(return_value=ok([stream("S1", KEY)]))
        cut = api.delete(sid_url("S1")).mock(return_value=ok())
        report, _ = run(tmp_path)
    assert cut.call_count == 0
    assert report.halt_reason == HaltReason.AUDIT_WRITE_FAILED
    assert report.exit_code != 0
