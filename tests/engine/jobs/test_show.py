"""revoker show KEY: one key in every region, as a table or JSON; exit 0 / 1 / 3 / 2."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import httpx
import pytest
import respx
from click.testing import CliRunner

from revoker.cli import main
from tests.conftest import NO_ECHO, api_not_found

pytestmark = pytest.mark.usefixtures("respx_transport")

BASE = "https://agora.test"
APP = "app1"
KEY = "showMeKey-0000001"


def url(region: str) -> str:
    return f"/{region}/v1/projects/{APP}/rtls/ingress/streamkeys/{KEY}"


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[respx.MockRouter]:
    monkeypatch.setenv("AGORA_CUSTOMER_ID", "cid")
    monkeypatch.setenv("AGORA_CUSTOMER_SECRET", "secret")
    monkeypatch.setenv("AGORA_BASE_URL", BASE)
    monkeypatch.delenv("AGORA_APP_ID", raising=False)
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


def present(expires_after: int) -> httpx.Response:
    data = {"streamKey": KEY, "channel": "room", "uid": "7", "createdAt": "1686820170",
            "expiresAfter": expires_after}  # fmt: skip
    return httpx.Response(200, json={"status": "success", "data": data})


def missing(request: httpx.Request) -> httpx.Response:
    return api_not_found(request)


def show(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["show", KEY, "--app-id", APP, "--max-attempts", "1", *args])
    return result.exit_code, result.output


def test_table_shows_each_region_with_iso_times(api: respx.MockRouter) -> None:
    api.get(url("na")).mock(return_value=present(0))
    api.get(url("eu")).mock(return_value=present(3600))
    api.get(url("ap")).mock(side_effect=missing)
    api.get(url("cn")).mock(side_effect=missing)
    code, out = show()
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].startswith("key show...001 (sha256:")
    assert KEY not in out
    assert lines[2].split() == ["na", "yes", "room", "7", "2023-06-15T09:09:30Z", "never"]
    assert lines[3].split()[-1] == "2023-06-15T10:09:30Z"
    assert lines[4].split() == ["ap", "no", "-", "-", "-", "-"]


def foreign_present() -> httpx.Response:
    """The API's 200 for the key, but from a proxy: no X-Request-ID echoed."""
    answer = present(0)
    answer.headers["X-Request-ID"] = NO_ECHO["X-Request-ID"]
    return answer


@pytest.mark.parametrize(
    "answer",
    [
        lambda: httpx.Response(404, text="<html>404 Not Found</html>"),
        foreign_present,
        lambda: httpx.Response(200, text="<html>room 7 1686820170</html>"),
    ],
    ids=["html-404", "200-no-request-id", "html-200"],
)
def test_an_answer_that_is_not_the_apis_is_unknown_never_absent_or_present(
    api: respx.MockRouter, answer: Callable[[], httpx.Response]
) -> None:
    api.get(url("na")).mock(side_effect=missing)
    api.get(url("eu")).mock(side_effect=lambda request: answer())
    code, out = show("--regions", "na,eu", "--output", "json")
    assert code == 1, out
    na, eu = json.loads(out)["regions"]
    assert (na["present"], eu["present"], eu["outcome"]) == (False, None, "failed")
    assert eu["message"] == "not an answer of the Media Gateway API (check --base-url)"
    assert (eu["channel"], eu["uid"], eu["created"], eu["expires"]) == (None,) * 4
    code, out = show("--regions", "eu")
    assert code == 1, out
    assert "eu: failed HTTP " in out
    assert "not an answer of the Media Gateway API (check --base-url)" in out
    assert "room" not in out
    assert "2023-06-15" not in out


def test_json_output_and_region_subset(api: respx.MockRouter) -> None:
    api.get(url("eu")).mock(return_value=present(60))
    code, out = show("--regions", "eu", "--output", "json")
    assert code == 0, out
    data = json.loads(out)
    assert [r["region"] for r in data["regions"]] == ["eu"]
    assert data["regions"][0]["present"] is True
    assert data["regions"][0]["expires"] == "2023-06-15T09:10:30Z"
    assert data["regions"][0]["request_id"]


def test_a_region_that_fails_to_answer_exits_1_with_its_request_id(
    api: respx.MockRouter,
) -> None:
    api.get(url("na")).mock(return_value=present(0))
    api.get(url("eu")).mock(
        return_value=httpx.Response(403, json={"status": "error", "message": "not enabled"})
    )
    code, out = show("--regions", "na,eu")
    assert code == 1, out
    assert "eu: failed HTTP 403 not enabled request_id=" in out


def test_rejected_credentials_exit_3(api: respx.MockRouter) -> None:
    api.get(url("na")).mock(return_value=httpx.Response(401, json={"message": "bad"}))
    code, _ = show("--regions", "na")
    assert code == 3


@pytest.mark.parametrize(
    "args", [["--regions", "xx"], ["--app-id", ""]], ids=["bad-region", "no-app-id"]
)
def test_usage_errors_exit_2_and_send_nothing(api: respx.MockRouter, args: list[str]) -> None:
    route = api.route()
    code, _ = show(*args)
    assert code == 2
    assert not route.called


def test_an_absurd_expiry_from_the_server_is_shown_as_unknown(api: respx.MockRouter) -> None:
    data = {"streamKey": KEY, "channel": "room", "uid": "7", "createdAt": "1686820170"}
    body = '{"status":"success","data":' + json.dumps(data)[:-1] + ',"expiresAfter":1e400}}'
    answer = httpx.Response(200, text=body, headers={"Content-Type": "application/json"})
    api.get(url__regex=".*").mock(return_value=answer)
    code, out = show("--regions", "na", "--output", "json")
    assert code == 0, out
    (region,) = json.loads(out)["regions"]
    assert region["present"] is True
    assert region["expires"] is None


def test_a_key_with_a_control_character_is_refused_before_sending(
    api: respx.MockRouter,
) -> None:
    route = api.route().mock(side_effect=missing)
    result = CliRunner().invoke(main, ["show", "bad\x01key-000000", "--app-id", APP])
    assert result.exit_code == 2
    assert "control character" in result.output
    assert route.call_count == 0
