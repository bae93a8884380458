"""revoker streams as text: a server's channel, status, sid and beginAt reach the
terminal escaped, never as escape sequences."""

from __future__ import annotations

import pytest
import respx
from click.testing import CliRunner

from revoker.cli import main
from tests.conftest import APP, BASE

pytestmark = pytest.mark.usefixtures("creds")

KEY = "leaked-key-0000001"
STREAMS = f"/na/v1/projects/{APP}/rtls/ingress/online-streams"
KEY_PATH = f"/na/v1/projects/{APP}/rtls/ingress/streamkeys/{KEY}"
HOSTILE = {
    "sid": "S1\u202egnp.exe",
    "channel": "\x1b]0;owned\x07c",
    "uid": "1\x08\x08",
    "url": f"rtmp://h/live/{KEY}",
    "status": "Running\r\x1b[2Kall streams stopped",
    "beginAt": "\x1b[31m2024",
}


@pytest.mark.parametrize("show_all", [False, True], ids=["matched", "all"])
def test_server_text_in_the_streams_table_is_escaped(api: respx.MockRouter, show_all: bool) -> None:
    api.get(STREAMS).respond(200, json={"status": "success", "data": [HOSTILE]})
    api.get(KEY_PATH).respond(200, json={"status": "success", "data": {"channel": "c", "uid": "1"}})
    args = ["streams", "--base-url", BASE, "--app-id", APP, "--regions", "na", "--key", KEY]
    result = CliRunner().invoke(main, args + (["--all"] if show_all else []))
    assert result.exit_code == 1, result.output
    for raw in ("\x1b", "\x07", "\x08", "\r", "\u202e"):
        assert raw not in result.output
    assert "\\x1b]0;owned\\x07c" in result.output
    assert "S1\\u202egnp.exe" in result.output


def test_a_place_that_never_answered_shows_no_http_status_rather_than_none() -> None:
    from revoker.render.streams import render_streams
    from revoker.results import StreamsReport

    report = StreamsReport()
    report.failures.append(
        {"app_id": "app1", "region": "na", "key_hint": "", "what": "listing",
         "outcome": "failed", "http_status": None, "message": "connection refused",
         "request_id": None}
    )  # fmt: skip
    text = render_streams(report, "text")
    assert "could not check app1/na: listing failed HTTP - connection refused request_id=-" in text
