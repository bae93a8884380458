"""The emulator's live streams as the API shows them: push URLs, one-stream query,
asynchronous disconnect, quota exhaustion."""

from __future__ import annotations

from pathlib import Path

from revoker.emulator.seeds import load_live_streams
from revoker.emulator.state import EmulatorState, LiveStream
from revoker.emulator.streams import begin_at_text, push_url

from .conftest import APP_ID, call, make_app, streams_path


def _state(**fields: object) -> EmulatorState:
    state = EmulatorState()
    state.add_stream(LiveStream("SID1", APP_ID, "na", "gone-key", "room", "7", **fields))  # type: ignore[arg-type]
    return state


def test_live_streams_csv_takes_a_url_as_given_or_builds_the_protocols_url(
    tmp_path: Path,
) -> None:
    path = tmp_path / "live.csv"
    path.write_text(
        "stream_key,app_id,region,sid,url,protocol,status\n"
        "k1,app1,na,A,rtmps://x.example.com/app/k1,,Started\n"
        "k/2,app1,eu,B,,srt,\n"
        "k3,app1,na,C,,whip,\n",
        encoding="utf-8",
    )
    state = EmulatorState()
    assert load_live_streams(state, path, now=0) == 3
    assert state.streams["A"].to_api()["url"] == "rtmps://x.example.com/app/k1"
    assert state.streams["A"].to_api()["status"] == "Started"
    assert state.streams["B"].url == push_url("srt", "eu", "k/2")
    assert state.streams["B"].url.endswith("?streamid=k%2F2")
    assert "k3" not in state.streams["C"].url  # WHIP: the key is a Bearer token


def test_begin_at_is_written_like_the_api() -> None:
    assert begin_at_text(1704070861.001) == "2024-01-01 01:01:01.001"


def test_one_stream_query_answers_a_data_array() -> None:
    app = make_app(_state())
    live = call(app, "GET", streams_path(sid="SID1")).json()
    assert [s["sid"] for s in live["data"]] == ["SID1"]
    assert call(app, "DELETE", streams_path(sid="SID1")).status_code == 200
    assert call(app, "GET", streams_path(sid="SID1")).json() == {"status": "success", "data": []}


def test_disconnect_is_asynchronous_with_a_delay() -> None:
    app = make_app(_state(), disconnect_delay_ms=60_000)
    assert call(app, "DELETE", streams_path(sid="SID1")).status_code == 200
    assert len(call(app, "GET", streams_path(sid="SID1")).json()["data"]) == 1
    assert len(call(app, "GET", streams_path()).json()["data"]) == 1
    app.emulator.state.end_disconnected(float("inf"))
    assert call(app, "GET", streams_path()).json()["data"] == []


def test_a_stream_that_ignores_disconnect_stays() -> None:
    app = make_app(_state(ignore_disconnect=True))
    assert call(app, "DELETE", streams_path(sid="SID1")).status_code == 200
    assert len(call(app, "GET", streams_path(sid="SID1")).json()["data"]) == 1


def test_a_stream_can_start_after_a_listing() -> None:
    app = make_app(_state(start_after_lists=1))
    assert call(app, "GET", streams_path()).json()["data"] == []
    assert [s["sid"] for s in call(app, "GET", streams_path()).json()["data"]] == ["SID1"]


def test_quota_exhausted_app_answers_429_without_retry_after_on_streams_only() -> None:
    app = make_app(_state(), quota_exhausted_apps=frozenset({APP_ID}))
    response = call(app, "GET", streams_path())
    assert response.status_code == 429
    assert response.json()["message"] == "Resources quota limit exceeded."
    assert "retry-after" not in response.headers
