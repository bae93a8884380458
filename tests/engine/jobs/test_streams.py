"""revoker streams: read-only, one listing per (app, region), exit 1 while a match is live."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import respx
from click.testing import CliRunner, Result

from revoker.cli import main
from tests.conftest import APP, BASE, NO_ECHO, api_not_found

pytestmark = pytest.mark.usefixtures("creds")

KEY = "leaked-key-0000001"
STREAMS = f"/na/v1/projects/{APP}/rtls/ingress/online-streams"
KEY_PATH = f"/na/v1/projects/{APP}/rtls/ingress/streamkeys/{KEY}"


def invoke(*args: str) -> Result:
    return CliRunner().invoke(
        main,
        ["streams", "--base-url", BASE, "--app-id", APP, "--regions", "na", "--max-attempts",
         "1", *args],
        catch_exceptions=False,
    )  # fmt: skip


def listing(*streams: dict[str, str]) -> httpx.Response:
    return httpx.Response(200, json={"status": "success", "data": list(streams)})


LIVE = {
    "sid": "S1",
    "channel": "c",
    "uid": "1",
    "url": f"srt://x:6001?streamid=#!::h=x,r={KEY}",
    "status": "Running",
    "beginAt": "2024-01-01 01:01:01.001",
}
WHIP = {**LIVE, "sid": "W1", "url": "https://w/whip", "status": "Started"}
STRANGER = {**LIVE, "sid": "Z9", "url": "rtmp://h/live/someone-else", "channel": "z"}


def test_lists_matching_streams_with_match_kind_and_exits_1(api: respx.MockRouter) -> None:
    listed = api.get(STREAMS).mock(return_value=listing(LIVE, WHIP, STRANGER))
    api.get(KEY_PATH).respond(200, json={"status": "success", "data": {"channel": "c", "uid": "1"}})
    deletes = api.delete(url__regex=".*")
    result = invoke("--key", KEY, "--output", "json")
    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    rows = {r["sid"]: r for r in report["streams"]}
    assert set(rows) == {"S1", "W1"}
    assert (rows["S1"]["match"], rows["S1"]["protocol"]) == ("url", "srt")
    assert (rows["W1"]["match"], rows["W1"]["status"]) == ("channel_uid", "Started")
    assert rows["S1"]["begin_at"] == "2024-01-01 01:01:01.001"
    assert listed.call_count == 1
    assert not deletes.called
    assert KEY not in result.output


def test_all_shows_every_stream_and_no_match_exits_0(api: respx.MockRouter) -> None:
    api.get(STREAMS).mock(return_value=listing(STRANGER))
    api.get(KEY_PATH).mock(side_effect=api_not_found)
    result = invoke("--key", KEY, "--all")
    assert result.exit_code == 0, result.output
    assert "Z9" in result.output
    assert "live streams matching the keys: 0" in result.output


def test_a_key_no_stream_matches_while_its_channel_and_uid_stream_elsewhere_is_said(
    api: respx.MockRouter,
) -> None:
    elsewhere = {**LIVE, "sid": "E\x1b]0;x\x07", "url": "rtmp://h/other-key-0002"}
    api.get(STREAMS).mock(return_value=listing(elsewhere))
    api.get(KEY_PATH).respond(200, json={"status": "success", "data": {"channel": "c", "uid": "1"}})
    result = invoke("--key", KEY)
    assert result.exit_code == 1, result.output
    assert "live streams matching the keys: 0" in result.output
    assert "not matched, still live: stream E\\x1b]0;x\\x07 in" in result.output
    assert "\x1b" not in result.output


def test_a_failed_listing_is_reported_and_exits_1(api: respx.MockRouter) -> None:
    api.get(STREAMS).respond(403, json={"status": "error", "message": "not enabled"})
    api.get(KEY_PATH).mock(side_effect=api_not_found)
    result = invoke("--key", KEY)
    assert result.exit_code == 1
    assert "could not check" in result.output
    assert "not enabled" in result.output


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, json={"status": "success", "data": [LIVE, WHIP]}, headers=NO_ECHO),
        httpx.Response(200, text=f"<html>{LIVE}</html>"),
    ],
    ids=["200-no-request-id", "html-200"],
)
def test_a_listing_that_is_not_the_apis_answer_is_a_failure_never_live_matches(
    api: respx.MockRouter, answer: httpx.Response
) -> None:
    api.get(STREAMS).mock(return_value=answer)
    api.get(KEY_PATH).respond(200, json={"status": "success", "data": {"channel": "c", "uid": "1"}})
    result = invoke("--key", KEY, "--output", "json")
    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    assert report["streams"] == []
    (failure,) = report["failures"]
    assert (failure["what"], failure["outcome"]) == ("listing", "failed")
    assert failure["message"] == "not an answer of the Media Gateway API (check --base-url)"


def test_bad_input_exits_2_with_nothing_sent(api: respx.MockRouter, tmp_path: Path) -> None:
    bad = tmp_path / "keys.csv"
    bad.write_text("stream_key,app_id\nok-key-000001,app\n,app\n", encoding="utf-8")
    sent = api.route(url__regex=".*")
    result = CliRunner().invoke(main, ["streams", "--base-url", BASE, str(bad)])
    assert result.exit_code == 2
    assert f"{bad}:3" in result.output
    assert not sent.called


def test_a_key_echoed_as_a_streams_channel_or_uid_is_masked_in_the_output(
    api: respx.MockRouter,
) -> None:
    echo = {**LIVE, "channel": f"room-{KEY}", "uid": KEY, "status": KEY}
    api.get(STREAMS).mock(return_value=listing(echo))
    api.get(KEY_PATH).respond(200, json={"status": "success", "data": {"channel": "c", "uid": "1"}})
    for fmt in ("json", "text"):
        result = invoke("--key", KEY, "--output", fmt)
        assert result.exit_code == 1, result.output
        assert KEY not in result.output
    (row,) = json.loads(invoke("--key", KEY, "--output", "json").output)["streams"]
    assert row["channel"] == "room-***"


def test_a_failed_listing_echoing_any_given_key_shows_it_masked(api: respx.MockRouter) -> None:
    other = "leaked-key-0000002"
    api.get(STREAMS).respond(503, json={"status": "error", "message": f"busy: {KEY} {other}"})
    api.get(url__regex=r".*/streamkeys/.+").mock(side_effect=api_not_found)
    result = invoke("--key", KEY, "--key", other, "--output", "json")
    assert other not in result.output
    [failure] = [f for f in json.loads(result.output)["failures"] if f["what"] == "listing"]
    assert failure["message"].startswith("busy: *** ***")
