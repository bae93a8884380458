from __future__ import annotations

import asyncio
import itertools
import uuid
from email.utils import formatdate
from urllib.parse import unquote

import httpx
import pytest
import respx
from hypothesis import given
from hypothesis import strategies as st

import revoker.agora.transport
from revoker.agora.auth import hmac_headers
from revoker.agora.client import (
    AgoraClient,
    ApiResponse,
    _answer_headers,
    key_path,
    parse_retry_after,
    request_ids,
    segment,
)
from revoker.credentials import Credentials
from revoker.errors import TransportFailure, UsageError
from revoker.settings import ClientSettings, check_base_url, default_fallback
from tests.conftest import mock_transport

BASE = "https://agora.test"
CREDS = Credentials("cid", "secret-value")


def call(settings: ClientSettings, method: str, *args: str) -> ApiResponse:
    async def go() -> ApiResponse:
        async with AgoraClient(settings, CREDS, transport=mock_transport()) as client:
            result: ApiResponse = await getattr(client, method)(*args)
            return result

    return asyncio.run(go())


@pytest.mark.parametrize(
    ("key", "encoded"),
    [
        ("a/../b?x#y", "a%2F..%2Fb%3Fx%23y"),
        ("..", "%2E%2E"),
        (".", "%2E"),
        ("100%", "100%25"),
        ("k+y=", "k%2By%3D"),
        ("ключ", "%D0%BA%D0%BB%D1%8E%D1%87"),
    ],
)
def test_hostile_keys_are_one_encoded_path_segment(key: str, encoded: str) -> None:
    assert segment(key) == encoded
    path = key_path("na", "app", key)
    assert path == f"/na/v1/projects/app/rtls/ingress/streamkeys/{encoded}"
    assert unquote(path.rsplit("/", 1)[1]) == key


def test_hostile_key_reaches_the_streamkeys_endpoint_on_the_wire() -> None:
    with respx.mock(base_url=BASE) as api:
        route = api.delete(url__regex=r".*").respond(404)
        call(ClientSettings(base_url=BASE), "delete_key", "eu", "app", "a/../b?x#y")
    sent = route.calls.last.request.url
    assert sent.raw_path == b"/eu/v1/projects/app/rtls/ingress/streamkeys/a%2F..%2Fb%3Fx%23y"
    assert sent.query == b""


def test_each_request_sends_a_fresh_uuid_and_records_the_echo() -> None:
    with respx.mock(base_url=BASE) as api:
        route = api.delete(url__regex=r".*").mock(
            side_effect=lambda request: httpx.Response(
                200,
                json={"status": "success"},
                headers={"X-Request-ID": "srv-" + request.headers["X-Request-ID"]},
            )
        )
        first = call(ClientSettings(base_url=BASE), "delete_key", "na", "app", "k1")
        second = call(ClientSettings(base_url=BASE), "delete_key", "na", "app", "k1")
    sent = [c.request.headers["X-Request-ID"] for c in route.calls]
    assert len(set(sent)) == 2
    assert all(uuid.UUID(s).version == 4 for s in sent)
    assert first.request_id == sent[0]
    assert first.server_request_id == "srv-" + sent[0]
    assert second.request_id == sent[1]


def test_basic_auth_header_is_sent_by_default() -> None:
    with respx.mock(base_url=BASE) as api:
        route = api.get(url__regex=r".*").respond(404)
        call(ClientSettings(base_url=BASE), "get_key", "na", "app", "k1")
    assert route.calls.last.request.headers["Authorization"] == "Basic Y2lkOnNlY3JldC12YWx1ZQ=="


def test_hmac_auth_signs_host_date_request_line_and_digest() -> None:
    with respx.mock(base_url=BASE) as api:
        route = api.delete(url__regex=r".*").respond(200, json={"status": "success"})
        call(ClientSettings(base_url=BASE, auth="hmac"), "delete_key", "na", "app", "a/b")
    request = route.calls.last.request
    expected = hmac_headers(
        CREDS,
        host="agora.test",
        method="DELETE",
        path="/na/v1/projects/app/rtls/ingress/streamkeys/a%2Fb",
        date=request.headers["Date"],
    )
    assert request.headers["Authorization"] == expected["Authorization"]
    assert request.headers["Digest"] == expected["Digest"]
    assert request.headers["Host"] == "agora.test"


def test_error_body_message_and_data_are_parsed() -> None:
    with respx.mock(base_url=BASE) as api:
        api.get(url__regex=r".*").respond(
            403, json={"status": "error", "message": "Stream does not belong to this app ID."}
        )
        response = call(ClientSettings(base_url=BASE), "get_key", "na", "app", "k")
    assert response.status == 403
    assert response.message == "Stream does not belong to this app ID."


def test_transport_errors_become_transport_failures_with_the_request_id() -> None:
    with respx.mock(base_url=BASE) as api:
        route = api.delete(url__regex=r".*").mock(side_effect=httpx.ReadTimeout("slow"))
        with pytest.raises(TransportFailure) as info:
            call(ClientSettings(base_url=BASE), "delete_key", "na", "app", "k")
    assert info.value.kind == "read_timeout"
    assert not info.value.connect
    assert info.value.request_id == route.calls.last.request.headers["X-Request-ID"]


def test_connect_failure_switches_to_the_fallback_host() -> None:
    settings = ClientSettings(base_url=BASE, fallback_url="https://fallback.test")
    with respx.mock() as api:
        api.delete(url__startswith=BASE).mock(side_effect=httpx.ConnectError("refused"))
        backup = api.delete(url__startswith="https://fallback.test").respond(200, json={})

        async def go() -> ApiResponse:
            async with AgoraClient(settings, CREDS, transport=mock_transport()) as client:
                with pytest.raises(TransportFailure) as info:
                    await client.delete_key("na", "app", "k")
                assert info.value.connect
                return await client.delete_key("na", "app", "k")

        response = asyncio.run(go())
    assert response.host == "fallback.test"
    assert backup.called


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(formatdate(1000.0 + 30, usegmt=True), now=1000.0) == 30.0
    assert parse_retry_after(formatdate(900.0, usegmt=True), now=1000.0) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


@pytest.mark.parametrize(
    "url", ["http://api.agora.io", "ftp://127.0.0.1", "https://u:p@api.agora.io", "nonsense"]
)
def test_unsafe_base_urls_are_refused(url: str) -> None:
    with pytest.raises(UsageError):
        check_base_url(url)


@pytest.mark.parametrize(
    "url",
    ["https://api.agora.io?", "https://api.agora.io#", "https://api.agora.io/?", "https://h/#x"],
)
def test_a_base_url_ending_in_an_empty_query_or_fragment_is_refused(url: str) -> None:
    with pytest.raises(UsageError, match="a query or a fragment"):
        check_base_url(url)
    with pytest.raises(UsageError, match="a query or a fragment"):
        check_base_url(url, allow_path=True)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:9"])
def test_plain_http_is_allowed_for_loopback_only(url: str) -> None:
    assert check_base_url(url) == url


@pytest.mark.parametrize("url", ["https://api.agora.io/dev", "https://api.agora.io/na/v1/"])
def test_a_base_url_with_a_path_is_refused_unless_allowed(url: str) -> None:
    with pytest.raises(UsageError, match="--allow-base-path"):
        check_base_url(url)
    assert check_base_url(url, allow_path=True) == url.rstrip("/")
    assert check_base_url("https://api.agora.io/") == "https://api.agora.io"


def test_agora_hosts_fall_back_to_each_other() -> None:
    assert default_fallback("https://api.agora.io") == "https://api.sd-rtn.com"
    assert default_fallback("https://api.sd-rtn.com") == "https://api.agora.io"
    assert default_fallback("http://127.0.0.1:8080") is None


def test_a_non_ascii_digit_retry_after_is_ignored_not_a_crash() -> None:
    assert parse_retry_after("²") is None
    assert parse_retry_after("٣") is None


def test_an_undecodable_body_is_a_transport_failure_not_a_crash() -> None:
    with respx.mock(base_url=BASE) as api:
        api.delete(url__regex=".*").mock(
            side_effect=lambda request: httpx.Response(
                200,
                stream=httpx.ByteStream(b"not gzip at all"),
                headers={"Content-Encoding": "gzip"},
            )
        )
        with pytest.raises(TransportFailure) as info:
            call(ClientSettings(base_url=BASE), "delete_key", "na", "app", "k")
    assert info.value.kind == "decoding_error"


def test_a_server_echoing_the_secret_or_basic_token_is_redacted() -> None:
    with respx.mock(base_url=BASE) as api:
        api.delete(url__regex=".*").mock(
            side_effect=lambda request: httpx.Response(
                400, json={"message": f"bad {request.headers['Authorization']} secret-value"}
            )
        )
        response = call(ClientSettings(base_url=BASE), "delete_key", "na", "app", "k")
    assert response.message == "bad Basic *** ***"


def test_secrets_echoed_in_the_data_of_an_answer_are_redacted_too() -> None:
    """The key's channel or a stream's uid is server text that reaches the audit log."""
    with respx.mock(base_url=BASE) as api:
        api.get(url__regex=".*").mock(
            side_effect=lambda request: httpx.Response(
                200,
                json={
                    "status": "success",
                    "data": {"channel": "secret-value", "uid": request.headers["Authorization"]},
                },
            )
        )
        response = call(ClientSettings(base_url=BASE), "get_key", "na", "app", "k")
    assert response.data == {"channel": "***", "uid": "Basic ***"}


def test_an_internationalised_host_is_sent_and_signed_as_punycode() -> None:
    base = "https://bücher.example"
    with respx.mock() as api:
        route = api.delete(url__regex=".*").respond(200, json={"status": "success"})
        call(ClientSettings(base_url=base, auth="hmac"), "delete_key", "na", "app", "k")
    request = route.calls.last.request
    assert request.headers["Host"] == "xn--bcher-kva.example"
    expected = hmac_headers(
        CREDS, host="xn--bcher-kva.example", method="DELETE",
        path="/na/v1/projects/app/rtls/ingress/streamkeys/k", date=request.headers["Date"],
    )  # fmt: skip
    assert request.headers["Authorization"] == expected["Authorization"]


def test_an_answer_nested_100000_deep_is_not_the_apis_and_does_not_crash() -> None:
    deep = b'{"status": "error", "message": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with respx.mock(base_url=BASE) as api:
        api.get(url__regex=r".*").respond(404, content=deep)
        response = call(ClientSettings(base_url=BASE), "get_key", "na", "app", "k")
    assert response.status == 404
    assert not response.api_answer
    assert not response.not_found  # never "absent" on an answer that is not the API's


@pytest.mark.parametrize(
    ("base", "fallback", "tls"),
    [
        ("http://127.0.0.1:8080", None, False),
        ("https://api.agora.io", "https://api.sd-rtn.com", True),
        ("http://127.0.0.1:8080", "https://api.agora.io", True),
    ],
)
def test_the_production_transport_is_asked_for_tls_only_when_a_base_url_is_https(
    base: str, fallback: str | None, tls: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[bool] = []

    def make_transport(limits: httpx.Limits, *, tls: bool = True) -> httpx.AsyncBaseTransport:
        asked.append(tls)
        return mock_transport(limits)

    monkeypatch.setattr(revoker.agora.transport, "make_transport", make_transport)
    AgoraClient(ClientSettings(base_url=base, fallback_url=fallback), Credentials("i", "s"))
    assert asked == [tls]


_NAMES = st.sampled_from(
    [b"X-Request-ID", b"x-request-id", b"Retry-After", b"Content-Type", b"CONTENT-ENCODING",
     b"Date", b"Server"]
)  # fmt: skip
_VALUES = st.binary(max_size=12).filter(lambda v: b"\r" not in v and b"\n" not in v)


@given(st.lists(st.tuples(_NAMES, _VALUES), max_size=8))
def test_the_answer_headers_read_in_one_pass_are_what_headers_get_gives(
    raw: list[tuple[bytes, bytes]],
) -> None:
    headers = httpx.Headers(raw)
    expected = {
        name.lower().encode("ascii"): headers.get(name)
        for name in ("X-Request-ID", "Retry-After", "Content-Type", "Content-Encoding")
        if name in headers
    }
    assert _answer_headers(headers) == expected


def test_request_ids_are_distinct_version_4_uuids_as_uuid_writes_them() -> None:
    ids = list(itertools.islice(request_ids(), 600))  # more than one block of randomness
    assert len(set(ids)) == len(ids)
    for value in ids:
        parsed = uuid.UUID(value)
        assert (str(parsed), parsed.version, parsed.variant) == (value, 4, uuid.RFC_4122)
