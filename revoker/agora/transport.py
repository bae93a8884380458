"""The production transport: httpx requests sent over aiohttp's connection pool.

Every use of a library's private API on the client side lives in this module,
each pinned by a test in ``tests/agora/test_transport.py`` so an upgrade that
breaks it fails there first:

- ``aiohttp.ClientSession._retry_connection`` (no public switch): turned off so
  aiohttp never resends a request by itself.

Errors leave this module as httpx exceptions; :mod:`revoker.agora.client` turns
them into :class:`~revoker.errors.TransportFailure`.
"""

from __future__ import annotations

import asyncio
import zlib
from typing import Any

import httpx

# The API answers with a few hundred bytes of JSON; anything near this is not its answer.
MAX_BODY = 1 << 20
_DECODERS = {"gzip": 47, "x-gzip": 47, "deflate": 15}  # zlib wbits (47: gzip header)


class ResponseTooLarge(httpx.TransportError):
    """The answer's body (as sent, or once decompressed) is over :data:`MAX_BODY`."""


class DeadlineExceeded(httpx.TimeoutException):
    """The whole attempt (connect, send, headers and body) took longer than ``--timeout``."""


def make_transport(limits: httpx.Limits) -> httpx.AsyncBaseTransport:
    """The production transport, for every run size: aiohttp's pool under httpx's types.

    httpcore's pool slows down as concurrency rises (README, Benchmarks); one
    transport also means one parser decides what a malformed answer is.
    """
    return AiohttpTransport(limits)


class AiohttpTransport(httpx.AsyncBaseTransport):
    """httpx requests sent over one ``aiohttp.ClientSession`` (HTTP/1.1, keep-alive pool).

    What httpx-aiohttp's transport does, minus its per-request streaming wrappers
    (the body is read here, in one piece), plus these fixes:

    - aiohttp silently resends an idempotent request (DELETE, GET) once when a
      kept-alive connection drops; the server then sees an attempt the audit log
      does not. Every retry is ours (tenacity), with its own X-Request-ID.
    - aiohttp re-parses a URL string with yarl, which decodes "%40" to "@" (and the
      like) after the HMAC signature covered the encoded path: a 401 for every key
      with such a character. The path is sent exactly as httpx encoded it.
    - Only a failure to connect is a ConnectError/ConnectTimeout (which may switch
      hosts); a connection dropped mid-response is a ReadError.
    - The read timeout is one deadline for the whole attempt: a server trickling
      its answer a byte at a time cannot hold a request (or a stopping run) forever.
    - The body is capped at MAX_BODY, compressed and decompressed (a gzip bomb is
      a failed attempt, not a gigabyte of memory).
    """

    def __init__(self, limits: httpx.Limits) -> None:
        self._limits = limits
        self._session: Any = None
        self._timeouts: dict[float | None, Any] = {}

    def _open(self) -> Any:
        import aiohttp

        connector = aiohttp.TCPConnector(
            limit=self._limits.max_connections or 0,
            keepalive_timeout=self._limits.keepalive_expiry,
            ssl=httpx.create_ssl_context(trust_env=False),
        )
        session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),  # the API sets no cookies
            auto_decompress=False,  # decoded here, under the size cap
            trust_env=False,
        )
        # Private hook (see the module docstring): no silent resend of a request.
        session._retry_connection = False
        self._session = session
        return session

    def _timeout(self, connect: float | None) -> Any:
        found = self._timeouts.get(connect)
        if found is None:
            from aiohttp import ClientTimeout

            # total=None: the deadline around the whole attempt is asyncio's, below.
            found = ClientTimeout(total=None, sock_connect=connect, connect=connect)
            self._timeouts[connect] = found
        return found

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        import aiohttp

        timeout = request.extensions.get("timeout") or {}
        deadline = timeout.get("read")
        session = self._session if self._session is not None else self._open()
        try:
            async with asyncio.timeout(deadline):
                response = await session.request(
                    request.method,
                    _as_encoded_url(str(request.url)),
                    headers=_str_headers(request.headers),
                    data=request.content or None,
                    allow_redirects=False,
                    compress=False,
                    timeout=self._timeout(timeout.get("connect")),
                    server_hostname=request.extensions.get("sni_hostname"),
                )
                try:
                    body = await _read_capped(response)
                except BaseException:
                    response.close()  # the rest of the body is unread: never reuse the connection
                    raise
                response.release()
        except TimeoutError:
            raise DeadlineExceeded(f"no complete answer within {deadline} s") from None
        except aiohttp.ClientError as exc:
            raise _map_aiohttp_error(exc) from exc
        extensions: dict[str, Any] = {"http_version": b"HTTP/1.1"}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode()
        # The body is decoded already (or was sent as is): httpx must not decode it again,
        # outside the cap.
        headers = tuple((k, v) for k, v in response.raw_headers if k.lower() != b"content-encoding")
        return httpx.Response(
            response.status,
            headers=headers,
            stream=httpx.ByteStream(body),
            request=request,
            extensions=extensions,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def _as_encoded_url(url: object) -> Any:
    """A yarl URL taken as already percent-encoded: no requoting, no dot segments removed."""
    from yarl import URL

    return url if isinstance(url, URL) else URL(str(url), encoded=True)


def _content_coding(response: Any) -> int | None:
    """The zlib wbits of the body's one coding (None: sent as is).

    Every ``Content-Encoding`` header counts, comma lists included; ``identity`` is
    no coding. More than one coding, or one we do not decode, is refused: each layer
    would multiply the size the cap has to hold (a kilobyte on the wire, a gigabyte
    decoded), and the API never layers them.
    """
    codings = [
        name.strip().lower()
        for header in response.headers.getall("Content-Encoding", ())
        for name in header.split(",")
    ]
    codings = [name for name in codings if name not in ("", "identity")]
    if not codings:
        return None
    if len(codings) > 1 or codings[0] not in _DECODERS:
        raise httpx.DecodingError(f"content coding {', '.join(codings)!r} refused (one at most)")
    return _DECODERS[codings[0]]


async def _read_capped(response: Any) -> bytes:
    """The body, decompressed if gzip/deflate; ResponseTooLarge past MAX_BODY either way."""
    declared = response.content_length
    if declared is not None and declared > MAX_BODY:
        raise ResponseTooLarge(f"answer of {declared} bytes, over the {MAX_BODY}-byte cap")
    wbits = _content_coding(response)
    decoder = zlib.decompressobj(wbits) if wbits is not None else None
    parts: list[bytes] = []
    raw = size = 0
    async for chunk in response.content.iter_chunked(65536):
        raw += len(chunk)
        if raw > MAX_BODY:
            raise ResponseTooLarge(f"answer over the {MAX_BODY}-byte cap")
        if decoder is not None:
            try:
                # max_length: never inflate more than one byte past the cap
                chunk = decoder.decompress(chunk, MAX_BODY - size + 1)
            except zlib.error as exc:
                raise httpx.DecodingError(f"undecodable compressed body: {exc}") from None
            if decoder.unconsumed_tail:
                raise ResponseTooLarge(f"answer over the {MAX_BODY}-byte cap once decompressed")
        size += len(chunk)
        if size > MAX_BODY:
            raise ResponseTooLarge(f"answer over the {MAX_BODY}-byte cap once decompressed")
        parts.append(chunk)
    return b"".join(parts)


def _str_headers(headers: httpx.Headers) -> list[tuple[str, str]]:
    """The headers as sent, names in their original case."""
    return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in headers.raw]


def _map_aiohttp_error(exc: BaseException) -> httpx.TransportError:
    import aiohttp

    message = str(exc)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(message)
    if isinstance(exc, aiohttp.SocketTimeoutError):
        return httpx.ReadTimeout(message)
    if isinstance(exc, aiohttp.ServerTimeoutError):  # connecting, or waiting for the pool
        return httpx.ConnectTimeout(message)
    if isinstance(exc, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError):
        return httpx.ReadError(message)  # reset or closed mid-response
    if isinstance(exc, aiohttp.ClientResponseError):
        return httpx.RemoteProtocolError(message)
    return httpx.TransportError(message)
