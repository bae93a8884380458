"""The Agora Media Gateway API over one httpx transport.

One call here is one HTTP attempt: a fresh ``X-Request-ID``, auth headers,
and the answer as an :class:`ApiResponse`. Requests are ``httpx.Request``
objects sent straight to the transport (no ``httpx.AsyncClient`` on the hot
path); httpx errors never leave this module: they become
:class:`~revoker.errors.TransportFailure`.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
import zlib
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import httpx

from revoker import __version__
from revoker.agora.auth import Credentials, basic_header, hmac_headers
from revoker.errors import TransportFailure, UsageError
from revoker.redact import server_request_id, server_text
from revoker.settings import ClientSettings

NOT_THE_API = "not an answer of the Media Gateway API (check --base-url)"
KEYS_PATH = "/{region}/v1/projects/{app}/rtls/ingress/streamkeys/{key}"
CREATE_PATH = "/{region}/v1/projects/{app}/rtls/ingress/streamkeys"
STREAMS_PATH = "/{region}/v1/projects/{app}/rtls/ingress/online-streams"


def segment(value: str) -> str:
    """Percent-encode ``value`` as exactly one path segment.

    ``quote(safe="")`` leaves ``.`` alone, so a segment made only of dots
    (``.``, ``..``) is encoded as ``%2E`` too: no key can climb the path.
    """
    encoded = quote(value, safe="")
    if encoded and set(encoded) == {"."}:
        encoded = "%2E" * len(encoded)
    return encoded


def key_path(region: str, app_id: str, key: str) -> str:
    return KEYS_PATH.format(region=segment(region), app=segment(app_id), key=segment(key))


def streams_path(region: str, app_id: str, sid: str | None = None) -> str:
    path = STREAMS_PATH.format(region=segment(region), app=segment(app_id))
    return path if sid is None else f"{path}/{segment(sid)}"


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds (delta or HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass(slots=True)
class ApiResponse:
    """One HTTP answer, reduced to what revoker records and decides on."""

    status: int
    request_id: str
    server_request_id: str | None
    host: str
    ms: int
    message: str | None = None
    data: Any = None
    retry_after: float | None = None
    api_error: bool = False  # a JSON error body ({"status": "error", ...}) and our ID echoed

    @property
    def not_found(self) -> bool:
        """The API itself answered "not found": the only 404 that means ``absent``."""
        return self.status == 404 and self.api_error

    @property
    def foreign(self) -> bool:
        """A 404 that is not the API's (an HTML page, a proxy, a wrong base path)."""
        return self.status == 404 and not self.api_error


def _error_kind(exc: httpx.HTTPError) -> str:
    name = type(exc).__name__
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


def _host_header(url: httpx.URL) -> str:
    """The Host header as sent (and HMAC-signed): ASCII (punycode), port if not default."""
    default = {"http": 80, "https": 443}.get(url.scheme)
    raw = url.raw_host.decode("ascii")
    host = raw if ":" not in raw else f"[{raw}]"
    return host if url.port in (None, default) else f"{host}:{url.port}"


class _UrlJoiner:
    """``httpx.URL(base + path + "?" + query)``, without parsing and validating it again.

    ``path`` and ``query`` come from :func:`segment` and ``quote(safe="")``: already
    percent-encoded, with no dot segments, so httpx's parser would return them
    unchanged. The base is parsed once; each URL is the base's parse result with
    the path and query replaced (a third of a request's CPU went to ``urlparse``).
    Falls back to parsing when the base is unusual or httpx's internals differ.
    """

    PROBE = "/x%2E/%2E%2E/y%40z"

    def __init__(self, base: str) -> None:
        self.base = base
        self.url = httpx.URL(base)
        self.host = _host_header(self.url)
        self._fast = False
        try:
            self._prefix = self.url._uri_reference.path
            self._fast = all(
                self._join(self.PROBE, query) == self._parse(self.PROBE, query)
                for query in (None, "q=%2F")
            )
        except (AttributeError, TypeError, ValueError):  # pragma: no cover - another httpx
            self._fast = False

    def join(self, path: str, query: str | None) -> httpx.URL:
        return self._join(path, query) if self._fast else self._parse(path, query)

    def _parse(self, path: str, query: str | None) -> httpx.URL:
        return httpx.URL(self.base + path + (f"?{query}" if query else ""))

    def _join(self, path: str, query: str | None) -> httpx.URL:
        url = httpx.URL.__new__(httpx.URL)
        url._uri_reference = self.url._uri_reference._replace(path=self._prefix + path, query=query)
        return url


def _as_encoded_url(url: object) -> Any:
    """A yarl URL taken as already percent-encoded: no requoting, no dot segments removed."""
    from yarl import URL

    return url if isinstance(url, URL) else URL(str(url), encoded=True)


USER_AGENT = f"revoker/{__version__}"
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
    return _AiohttpTransport(limits)


class _AiohttpTransport(httpx.AsyncBaseTransport):
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
        headers = response.raw_headers
        if response.headers.get("Content-Encoding", "").strip().lower() in _DECODERS:
            headers = tuple((k, v) for k, v in headers if k.lower() != b"content-encoding")
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


async def _read_capped(response: Any) -> bytes:
    """The body, decompressed if gzip/deflate; ResponseTooLarge past MAX_BODY either way."""
    declared = response.content_length
    if declared is not None and declared > MAX_BODY:
        raise ResponseTooLarge(f"answer of {declared} bytes, over the {MAX_BODY}-byte cap")
    wbits = _DECODERS.get(response.headers.get("Content-Encoding", "").strip().lower())
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


class AgoraClient:
    """Media Gateway calls. Use as ``async with AgoraClient(...) as client``."""

    def __init__(
        self,
        settings: ClientSettings,
        credentials: Credentials,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if settings.auth not in ("basic", "hmac"):
            raise UsageError(f"unknown auth scheme {settings.auth!r} (basic or hmac)")
        self.settings = settings
        self._credentials = credentials
        self._basic = basic_header(credentials)
        # What a server must not get echoed into a record: the secret and the Basic token.
        self._secrets = (credentials.customer_secret, self._basic.removeprefix("Basic "))
        self._bases = settings.base_urls
        self._joiners = [_UrlJoiner(base) for base in self._bases]
        self._active = 0
        limits = httpx.Limits(
            max_connections=max(settings.concurrency, 1),
            max_keepalive_connections=max(settings.concurrency, 1),
        )
        if transport is None:
            transport = make_transport(limits)
        # Requests go straight to the transport, as httpx.AsyncClient would send them
        # with follow_redirects=False, no cookie jar and trust_env=False, but without
        # the client's per-request work (URL merging, auth and redirect wrappers,
        # cookies), which cost more CPU than aiohttp's whole HTTP exchange.
        self._transport = transport
        # As httpx passes a client's timeout to its transport.
        self._extensions = {"timeout": httpx.Timeout(settings.timeout).as_dict()}

    async def __aenter__(self) -> AgoraClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._transport.aclose()

    @property
    def has_fallback(self) -> bool:
        return len(self._bases) > 1

    def _note_connect_failure(self, index: int) -> None:
        """Move to the other host after a DNS/connect failure on the active one."""
        if index == self._active and self.has_fallback:
            self._active = (index + 1) % len(self._bases)

    async def request(
        self, method: str, path: str, *, query: str = "", body: bytes = b""
    ) -> ApiResponse:
        """One attempt of ``method path`` on the active host."""
        index = self._active
        joiner = self._joiners[index]
        url = joiner.join(path, query or None)
        host = joiner.host
        request_id = str(uuid.uuid4())
        headers = {
            "Host": host,
            "Accept": "application/json",
            "Accept-Encoding": "identity",  # small answers; a compressed one is still capped
            "User-Agent": USER_AGENT,
            "X-Request-ID": request_id,
        }
        if self.settings.auth == "hmac":
            raw_path = url.raw_path.decode("ascii")
            headers.update(
                hmac_headers(self._credentials, host=host, method=method, path=raw_path, body=body)
            )
        else:
            headers["Authorization"] = self._basic
        if body:
            headers["Content-Type"] = "application/json"
        started = time.perf_counter()
        try:
            request = httpx.Request(
                method, url, headers=headers, content=body or None, extensions=self._extensions
            )
            response = await self._transport.handle_async_request(request)
            try:
                await response.aread()
            finally:
                await response.aclose()
        except httpx.HTTPError as exc:  # transport errors, and a body that cannot be decoded
            ms = int((time.perf_counter() - started) * 1000)
            connect = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
            if connect:
                self._note_connect_failure(index)
            raise TransportFailure(_error_kind(exc), host, connect, request_id, ms) from None
        ms = int((time.perf_counter() - started) * 1000)
        return _to_api_response(response, request_id, host, ms, self._secrets)

    async def delete_key(self, region: str, app_id: str, key: str) -> ApiResponse:
        return await self.request("DELETE", key_path(region, app_id, key))

    async def get_key(self, region: str, app_id: str, key: str) -> ApiResponse:
        return await self.request("GET", key_path(region, app_id, key))

    async def create_key(
        self, region: str, app_id: str, *, channel: str, uid: str, expires_after: int
    ) -> ApiResponse:
        """POST a new key with these settings; Agora generates the key (``data.streamKey``)."""
        settings = {"channel": channel, "uid": uid, "expiresAfter": expires_after}
        body = json.dumps({"settings": settings}, separators=(",", ":")).encode("utf-8")
        path = CREATE_PATH.format(region=segment(region), app=segment(app_id))
        return await self.request("POST", path, body=body)

    async def list_streams(
        self, region: str, app_id: str, channel: str | None = None
    ) -> ApiResponse:
        """The live streams of an app in a region (of one channel if given)."""
        query = "" if channel is None else "channel=" + quote(channel, safe="")
        return await self.request("GET", streams_path(region, app_id), query=query)

    async def get_stream(self, region: str, app_id: str, sid: str) -> ApiResponse:
        """One live stream by SID: ``data`` is an array, empty (or a 404) once it ended."""
        return await self.request("GET", streams_path(region, app_id, sid))

    async def disconnect_stream(self, region: str, app_id: str, sid: str) -> ApiResponse:
        return await self.request("DELETE", streams_path(region, app_id, sid))


def _to_api_response(
    response: httpx.Response, request_id: str, host: str, ms: int, secrets: tuple[str, ...]
) -> ApiResponse:
    """The answer reduced; every string from the server passes the redactor."""
    body: Any = None
    try:
        body = response.json()
    except ValueError:
        body = None
    message: str | None = None
    data: Any = None
    if isinstance(body, dict):
        data = body.get("data")
        if response.status_code != 200:
            raw = body.get("message")
            message = str(raw)[:500] if raw is not None else None
    if response.status_code != 200 and message is None:
        text = response.text.strip()
        message = text[:200] if text else response.reason_phrase or None
    echoed = response.headers.get("X-Request-ID")
    return ApiResponse(
        status=response.status_code,
        request_id=request_id,
        server_request_id=server_request_id(echoed, secrets),
        host=host,
        ms=ms,
        message=None if message is None else server_text(message, secrets),
        data=data,
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
        # The API echoes the X-Request-ID it was sent; a front proxy or another
        # service under a wrong base path does not answer in this shape.
        api_error=(
            isinstance(body, dict) and body.get("status") == "error" and echoed == request_id
        ),
    )
