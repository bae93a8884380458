"""The listing before the first DELETE: which answers refuse an app, which do not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from click.testing import CliRunner

from revoker.cli import main
from tests.conftest import APP, BASE

pytestmark = pytest.mark.usefixtures("creds", "respx_transport")

LISTING = f"{BASE}/na/v1/projects/{APP}/rtls/ingress/online-streams"


def revoke(tmp_path: Path) -> dict[str, Any]:
    result = CliRunner().invoke(
        main,
        ["revoke", "--key", "stream-key-0000-abcdef", "--app-id", APP, "--regions", "na",
         "--base-url", BASE, "--audit-log", str(tmp_path / "a.jsonl"), "--max-rps", "0",
         "--max-attempts", "1", "--output", "json"],
    )  # fmt: skip
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def error(status: int, message: str) -> httpx.Response:
    return httpx.Response(status, json={"status": "error", "message": message})


@pytest.mark.parametrize(
    "answer",
    [
        error(400, "Invalid app ID."),
        error(403, "Media Gateway is not enabled for this project. Contact us to enable."),
    ],
    ids=["400-invalid-app", "403-not-enabled"],
)
def test_an_answer_saying_the_app_cannot_be_used_sends_no_delete(
    tmp_path: Path, api: respx.MockRouter, answer: httpx.Response
) -> None:
    api.get(LISTING).mock(return_value=answer)
    delete = api.delete(url__regex=".*").mock(return_value=httpx.Response(200))
    summary = revoke(tmp_path)
    assert delete.call_count == 0
    assert summary["exit_code"] == 1
    assert summary["revoke"]["counts"] == {
        "absent": 0,
        "failed": 1,
        "not_attempted": 0,
        "revoked": 0,
    }
    assert summary["revoke"]["failures"][0]["message"].startswith("not sent: listing live")


@pytest.mark.parametrize(
    "answer",
    [
        error(400, "Invalid body."),
        error(403, "Stream does not belong to this app ID."),
        error(500, "Some internal error happened."),
    ],
    ids=["400-other", "403-other", "500"],
)
def test_any_other_failed_listing_lets_the_deletes_go_ahead(
    tmp_path: Path, api: respx.MockRouter, answer: httpx.Response
) -> None:
    api.get(LISTING).mock(return_value=answer)
    delete = api.delete(url__regex=".*").mock(
        return_value=httpx.Response(200, json={"status": "success"})
    )
    summary = revoke(tmp_path)
    assert delete.call_count == 1
    assert summary["exit_code"] == 0
    listing = [
        r for r in map(json.loads, (tmp_path / "a.jsonl").read_text().splitlines())
        if r["event"] == "listing"
    ]  # fmt: skip
    assert [(r["outcome"], r["refused"]) for r in listing] == [("failed", False)]


def test_a_refused_app_is_named_in_the_next_step_before_any_resume(
    tmp_path: Path, api: respx.MockRouter
) -> None:
    api.get(LISTING).mock(return_value=error(400, "Invalid app ID."))
    result = CliRunner().invoke(
        main,
        ["revoke", "--key", "stream-key-0000-abcdef", "--app-id", APP, "--regions", "na",
         "--base-url", BASE, "--audit-log", str(tmp_path / "a.jsonl"), "--max-rps", "0",
         "--max-attempts", "1"],
    )  # fmt: skip
    lines = result.stdout.splitlines()
    step = lines[lines.index("next:") + 1]
    # Resuming with the same app ID would be refused again: the app ID comes first.
    assert step.startswith(f"  fix the app ID {APP} (wrong, or Media Gateway not enabled")
    assert step.endswith("then resume (1 tasks failed or not attempted; done pairs are skipped):")


def test_a_pair_refused_at_the_listing_names_the_listings_request_id(
    tmp_path: Path, api: respx.MockRouter
) -> None:
    api.get(LISTING).mock(return_value=error(400, "Invalid app ID."))
    summary = revoke(tmp_path)
    [listing] = [
        r for r in map(json.loads, (tmp_path / "a.jsonl").read_text().splitlines())
        if r["event"] == "listing"
    ]  # fmt: skip
    # The pair sent nothing: the request Agora support can look up is the listing's.
    assert listing["request_id"]
    assert listing["request_id"] in summary["revoke"]["failures"][0]["message"]


def test_a_failed_listing_echoing_the_runs_keys_records_none_of_them(
    tmp_path: Path, api: respx.MockRouter
) -> None:
    # The listing sends no key, yet a server may echo the run's keys, as they are or
    # percent-encoded (in either hex case), in its message and its X-Request-ID.
    keys = tmp_path / "keys.txt"
    keys.write_text("stream-key-0000-abcdef\nother/key+0000=xyz\n")
    message = (
        "upstream stream-key-0000-abcdef failed; also other%2fkey%2B0000%3Dxyz "
        "and other/key+0000=xyz"
    )
    api.get(LISTING).mock(
        return_value=httpx.Response(
            503,
            json={"status": "error", "message": message},
            headers={"X-Request-ID": "stream-key-0000-abcdef"},
        )
    )
    api.delete(url__regex=".*").mock(return_value=httpx.Response(200, json={"status": "success"}))
    result = CliRunner().invoke(
        main,
        ["revoke", str(keys), "--app-id", APP, "--regions", "na", "--base-url", BASE,
         "--audit-log", str(tmp_path / "a.jsonl"), "--max-rps", "0", "--max-attempts", "1",
         "--output", "json"],
    )  # fmt: skip
    assert json.loads(result.stdout)["exit_code"] == 0
    text = (tmp_path / "a.jsonl").read_text()
    for form in ("stream-key-0000-abcdef", "other/key+0000=xyz", "other%2fkey%2B0000%3Dxyz"):
        assert form not in text
        assert form not in result.stdout + result.stderr
    [listing] = [r for r in map(json.loads, text.splitlines()) if r["event"] == "listing"]
    assert listing["message"].startswith("upstream *** failed; also *** and ***")
    assert listing["attempts"][0]["server_request_id"] == "***"
