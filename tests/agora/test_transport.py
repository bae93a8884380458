"""The aiohttp transport on a loopback socket: each library hook it relies on, pinned."""

from __future__ import annotations

import asyncio

import aiohttp
import httpx
import pytest

from revoker.agora.transport import AiohttpTransport, make_transport

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
