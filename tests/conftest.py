"""Shared fixtures: recognisable credentials, a respx-mocked API, key files."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import respx
import respx.models

import revoker.agora.transport

BASE = "https://agora.test"
APP = "9d2498880e934632b38b0a68fa2f1622"
CUSTOMER_ID = "cid-RECOGNISABLE-7f3a"
SECRET = "sec-RECOGNISABLE-91b2e"  # searched for in every output by the secrets tests
KEY_PATTERN = r"^/(na|eu|ap|cn)/v1/projects/[^/]+/rtls/ingress/streamkeys/[^/]+$"


def api_not_found(request: httpx.Request) -> httpx.Response:
    """The API's own 404 (respx side effect): its error body, our X-Request-ID echoed."""
    return httpx.Response(
        404,
        json={"status": "error", "message": "Resource not found and destroyed."},
        headers={"X-Request-ID": request.headers["X-Request-ID"]},
    )


@pytest.fixture
def creds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials in the environment, as in production."""
    monkeypatch.setenv("AGORA_CUSTOMER_ID", CUSTOMER_ID)
    monkeypatch.setenv("AGORA_CUSTOMER_SECRET", SECRET)
    for name in (
        "AGORA_APP_ID",
        "AGORA_BASE_URL",
        "AGORA_REGIONS",
        "AGORA_AUTH",
        "REVOKER_AUDIT_LOG",
        "REVOKER_SIGN_KEY",
        "JOB_COMPLETION_INDEX",
        "AGORA_FALLBACK_BASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)


# Mock headers for an answer with no X-Request-ID at all (a proxy's, not the API's).
NO_ECHO = {"X-Request-ID": ""}


LISTING_PATH = re.compile(r"/(na|eu|ap|cn)/v1/projects/[^/]+/rtls/ingress/online-streams$")


class EchoingTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport, which respx intercepts; like the API, every answer but
    a 401 echoes the request's X-Request-ID unless the mock set one of its own
    (:data:`NO_ECHO`: none).

    A listing of live streams that no route mocks is answered as the API answers a
    project with no live stream (200, empty ``data``): revoke and rotate list every
    (app ID, region) before their first DELETE, and most tests are not about that.
    """

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await super().handle_async_request(request)
        except respx.models.AllMockedAssertionError:
            if request.method != "GET" or not LISTING_PATH.search(request.url.path):
                raise
            response = httpx.Response(200, json={"status": "success", "data": []})
        sent = request.headers.get("X-Request-ID")
        if response.headers.get("X-Request-ID") == "":
            del response.headers["X-Request-ID"]
        elif sent and response.status_code != 401 and "X-Request-ID" not in response.headers:
            response.headers["X-Request-ID"] = sent
        return response


def mock_transport(
    limits: httpx.Limits | None = None, *, tls: bool = True
) -> httpx.AsyncBaseTransport:
    """The transport respx intercepts (production sends over aiohttp's); see
    :class:`EchoingTransport`. Pass it as ``transport=`` wherever the code under
    test takes one. ``tls`` is the production factory's, and changes nothing here.
    """
    if limits is None:
        return EchoingTransport(trust_env=False)
    return EchoingTransport(limits=limits, trust_env=False)


@pytest.fixture
def respx_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    """For CLI tests (CliRunner), which cannot pass ``transport=``: the factory replaced."""
    monkeypatch.setattr(revoker.agora.transport, "make_transport", mock_transport)


@pytest.fixture
def api(respx_transport: None) -> Iterator[respx.MockRouter]:
    """The Agora API mocked by respx; unmatched requests fail the test."""
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.fixture
def keys_csv(tmp_path: Path) -> Path:
    path = tmp_path / "keys.csv"
    path.write_text(
        "stream_key,app_id,regions\n"
        f"key-aaaa-0000001,{APP},\n"
        f"key-bbbb-0000002,{APP},NA;eu\n"
        "key-cccc-0000003,otherapp,cn\n",
        encoding="utf-8",
    )
    return path
