"""The aiohttp transport on a loopback socket: each library hook it relies on, pinned."""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import aiohttp
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from revoker.agora.client import key_path
from revoker.agora.transport import (
    AiohttpTransport,
    BaseURL,
    DeadlineExceeded,
    _plain_path,
    make_transport,
)

LIMITS = httpx.Limits(max_connections=1, max_keepalive_connections=1)
TIMEOUT = {"timeout": httpx.Timeout(5.0).as_dict()}
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}"


async def _serve(answers: list[bytes | None], seen: list[bytes]) -> asyncio.Server:
    """A loopback server: the n-th request gets ``answers[n]``; None closes the connection."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                seen.append(head.split(b"\r\n", 1)[0])
                answer = answers[len(seen) - 1] if len(seen) <= len(answers) else None
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def _url(server: asyncio.Server, path: str) -> str:
    port = server.sockets[0].getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


def test_the_production_transport_is_aiohttps() -> None:
    assert isinstance(make_transport(LIMITS), AiohttpTransport)


@pytest.mark.parametrize("tls", [True, False])
def test_the_ca_bundle_is_loaded_only_for_a_transport_that_may_send_over_https(
    tls: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded: list[bool] = []
    real = httpx.create_ssl_context

    def create_ssl_context(**kwargs: Any) -> ssl.SSLContext:
        loaded.append(True)
        return real(**kwargs)

    monkeypatch.setattr(httpx, "create_ssl_context", create_ssl_context)

    async def go() -> None:
        transport = AiohttpTransport(LIMITS, tls=tls)
        transport._open()
        await transport.aclose()

    asyncio.run(go())
    assert loaded == ([True] if tls else [])


def test_aiohttp_still_has_the_private_switch_against_silent_resends() -> None:
    # ClientSession warns on (and may one day refuse) attributes outside ATTRS.
    assert "_retry_connection" in aiohttp.ClientSession.ATTRS

    async def go() -> bool:
        transport = AiohttpTransport(LIMITS)
        session = transport._open()
        try:
            return bool(session._retry_connection)
        finally:
            await transport.aclose()

    assert asyncio.run(go()) is False


def test_a_kept_alive_connection_dropped_mid_request_is_not_resent() -> None:
    """aiohttp would resend the DELETE once on a new connection: an attempt no audit line shows."""
    seen: list[bytes] = []

    async def go() -> None:
        server = await _serve([OK, None, OK], seen)
        transport = AiohttpTransport(LIMITS)
        try:
            url = _url(server, "/na/k")
            first = await transport.handle_async_request(
                httpx.Request("DELETE", url, extensions=TIMEOUT)
            )
            assert first.status_code == 200
            with pytest.raises(httpx.TransportError):
                await transport.handle_async_request(
                    httpx.Request("DELETE", url, extensions=TIMEOUT)
                )
        finally:
            await transport.aclose()
            server.close()
            await server.wait_closed()

    asyncio.run(go())
    assert seen == [b"DELETE /na/k HTTP/1.1"] * 2


def test_the_path_is_sent_exactly_as_encoded() -> None:
    """yarl would decode %40 and drop %2E%2E after the HMAC signature covered them."""
    seen: list[bytes] = []
    path = "/na/v1/projects/app/rtls/ingress/streamkeys/a%40b/%2E%2E/c%2Fd?channel=x%26y"

    async def go() -> None:
        server = await _serve([OK], seen)
        transport = AiohttpTransport(LIMITS)
        try:
            request = httpx.Request("GET", _url(server, path), extensions=TIMEOUT)
            assert (await transport.handle_async_request(request)).status_code == 200
        finally:
            await transport.aclose()
            server.close()
            await server.wait_closed()

    asyncio.run(go())
    assert seen == [f"GET {path} HTTP/1.1".encode()]


def test_httpx_urls_still_hold_the_parse_base_url_builds_on() -> None:
    parsed = httpx.URL("https://agora.test")._uri_reference
    assert parsed._replace(path="/na", query="a=b").path == "/na"
    assert BaseURL("https://agora.test")._parsed is not None, "the fast join is in use"


BASES = (
    "https://agora.test",
    "http://127.0.0.1:8080",
    "http://[::1]:9000",
    "https://Bücher.example:443",
    "https://proxy.test/agora/api",
    "https://proxy.test/a/../b",  # a dot segment in the base: httpx's own parse
)


@settings(max_examples=300, deadline=None)
@given(
    base=st.sampled_from(BASES),
    key=st.text(min_size=1, max_size=40),
    channel=st.none() | st.text(max_size=20),
)
def test_a_joined_url_is_the_url_httpx_parses_from_the_whole_string(
    base: str, key: str, channel: str | None
) -> None:
    path = key_path("na", "9d2498880e934632b38b0a68fa2f1622", key)
    query = "" if channel is None else "channel=" + quote(channel, safe="")
    joined = BaseURL(base).join(path, query)
    whole = httpx.URL(base + path + (f"?{query}" if query else ""))
    assert joined == whole
    assert (str(joined), joined.raw_path, joined.raw_host) == (
        str(whole),
        whole.raw_path,
        whole.raw_host,
    )


# Paths of the characters that matter to a plain path: dots, escapes, separators.
_PATHS = st.text(alphabet="/.%aZ09fF-_~+ ?#", max_size=24).map(lambda p: "/" + p)


@settings(max_examples=500, deadline=None)
@given(base=st.sampled_from(BASES), path=_PATHS)
def test_any_path_joins_to_the_url_httpx_parses_from_the_whole_string(base: str, path: str) -> None:
    joined, whole = BaseURL(base).join(path), httpx.URL(base + path)
    assert (str(joined), joined.raw_path) == (str(whole), whole.raw_path)


@settings(max_examples=500, deadline=None)
@given(path=_PATHS | st.text(alphabet="/.%aF9", max_size=12))
def test_a_plain_path_is_slash_separated_segments_of_plain_characters_none_a_dot(
    path: str,
) -> None:
    char = r"(?:[A-Za-z0-9_.~-]|%[0-9A-Fa-f]{2})"
    spec = re.compile(rf"(?:/(?!\.\.?(?:/|$)){char}*)+")
    assert _plain_path(path) == (spec.fullmatch(path) is not None)


def test_a_path_that_is_not_plain_segments_is_parsed_by_httpx() -> None:
    base = BaseURL("https://agora.test")
    assert base.join("/na/../x") == httpx.URL("https://agora.test/x")
    assert base.join("/na/a b") == httpx.URL("https://agora.test/na/a%20b")


def _trickling_server() -> Callable[[], Awaitable[asyncio.Server]]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
            for _ in range(100):
                writer.write(b"x")
                await writer.drain()
                await asyncio.sleep(0.05)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def start() -> asyncio.Server:
        return await asyncio.start_server(handle, "127.0.0.1", 0)

    return start


def test_each_attempt_in_flight_ends_at_its_own_deadline() -> None:
    limits = httpx.Limits(max_connections=8, max_keepalive_connections=8)

    async def go() -> list[BaseException]:
        server = await _trickling_server()()
        transport = AiohttpTransport(limits)
        try:

            async def attempt(seconds: float) -> BaseException:
                ext = {"timeout": httpx.Timeout(seconds).as_dict()}
                request = httpx.Request("GET", _url(server, "/na/k"), extensions=ext)
                try:
                    await transport.handle_async_request(request)
                except httpx.TransportError as exc:
                    return exc
                raise AssertionError("a 5 s answer came within the deadline")

            # Started in the order of a long deadline first: the short ones still end
            # first, each at its own.
            ended: list[BaseException] = []
            for done in asyncio.as_completed([attempt(s) for s in (0.9, 0.2, 0.4)]):
                ended.append(await done)
            assert not transport._deadlines._heap, "nothing held once every attempt ended"
            return ended
        finally:
            await transport.aclose()
            server.close()
            await server.wait_closed()

    ended = asyncio.run(go())
    assert [type(exc) for exc in ended] == [DeadlineExceeded] * 3
    assert [str(exc) for exc in ended] == [
        f"no complete answer within {s} s" for s in (0.2, 0.4, 0.9)
    ]


def test_a_cancelled_attempt_stays_cancelled_and_is_no_timeout() -> None:
    """A stop (the run's own cancellation) is not the deadline's: it is never retried."""

    async def go() -> None:
        server = await _trickling_server()()
        transport = AiohttpTransport(LIMITS)
        try:
            request = httpx.Request("GET", _url(server, "/na/k"), extensions=TIMEOUT)
            task = asyncio.ensure_future(transport.handle_async_request(request))
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert not transport._deadlines._heap
        finally:
            await transport.aclose()
            server.close()
            await server.wait_closed()

    asyncio.run(go())


def test_a_connect_timeout_is_a_connect_timeout_so_the_fallback_host_is_tried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """aiohttp's connect timeout is also a TimeoutError: it must not read as the
    attempt's deadline (a read timeout), which never switches hosts."""

    async def never_connects(*args: object, **kwargs: object) -> aiohttp.ClientResponse:
        raise aiohttp.ConnectionTimeoutError("Connection timeout to host 127.0.0.1:9")

    monkeypatch.setattr(aiohttp.ClientSession, "request", never_connects)

    async def go() -> None:
        transport = AiohttpTransport(LIMITS)
        try:
            request = httpx.Request("GET", "http://127.0.0.1:9/na/k", extensions=TIMEOUT)
            with pytest.raises(httpx.ConnectTimeout):
                await transport.handle_async_request(request)
        finally:
            await transport.aclose()

    asyncio.run(go())
