"""The Agora Media Gateway API: its paths, one attempt per call, the answer reduced.

One call here is one HTTP attempt: a fresh ``X-Request-ID``, auth headers,
and the answer as an :class:`ApiResponse`. Requests are ``httpx.Request``
objects sent straight to a transport (:mod:`revoker.agora.transport` in
production, any ``httpx.AsyncBaseTransport`` passed as ``transport=``);
httpx errors never leave this module: they become
:class:`~revoker.errors.TransportFailure`.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import httpx

from revoker import __version__
from revoker.agora import transport as _transport
from revoker.agora.auth import basic_header, hmac_headers
from revoker.credentials import Credentials
from revoker.errors import TransportFailure, UsageError
from revoker.jsontext import loads
from revoker.redact import KeyDigests, key_forms, server_data, server_request_id, server_text
from revoker.settings import ClientSettings

NOT_THE_API = "not an answer of the Media Gateway API (check --base-url)"
KEYS_PATH = "/{region}/v1/projects/{app}/rtls/ingress/streamkeys/{key}"
CREATE_PATH = "/{region}/v1/projects/{app}/rtls/ingress/streamkeys"
STREAMS_PATH = "/{region}/v1/projects/{app}/rtls/ingress/online-streams"


_URL_SAFE = re.compile(r"[A-Za-z0-9_.~-]*")  # what quote(safe="") leaves as it is


def segment(value: str) -> str:
    """Percent-encode ``value`` as exactly one path segment.

    ``quote(safe="")`` leaves ``.`` alone, so a segment made only of dots
    (``.``, ``..``) is encoded as ``%2E`` too: no key can climb the path.
    """
    if _URL_SAFE.fullmatch(value) and value.strip("."):  # the usual ID or key: as it is
        return value
    encoded = quote(value, safe="")
    if encoded and set(encoded) == {"."}:
        encoded = "%2E" * len(encoded)
    return encoded


@dataclass(frozen=True, slots=True)
class StreamKey:
    """A stream key with its path segment and the forms redaction blanks, made once per
    task and reused by each of its attempts."""

    key: str
    segment: str
    forms: tuple[str, ...]

    @classmethod
    def of(cls, key: str) -> StreamKey:
        return cls(key, segment(key), key_forms(key))


def key_path(region: str, app_id: str, key: str | StreamKey) -> str:
    encoded = key.segment if isinstance(key, StreamKey) else segment(key)
    return KEYS_PATH.format(region=segment(region), app=segment(app_id), key=encoded)


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
    # The API's own shape: {"status": "success", ...} for a 200, {"status": "error",
    # ...} otherwise, and the X-Request-ID we sent echoed.
    api_answer: bool = False

    @property
    def not_found(self) -> bool:
        """The API itself answered "not found": the only 404 that means ``absent``."""
        return self.status == 404 and self.api_answer

    @property
    def foreign(self) -> bool:
        """A 200 or 404 that is not the API's (an HTML page, a catch-all proxy, a wrong
        base path): never a key revoked, present or absent."""
        return self.status in (200, 404) and not self.api_answer


def json_media_type(content_type: str | None) -> bool:
    """``application/json`` or a ``+json`` type (any parameters, any case): the API
    answers in JSON, and a JSON body under ``text/html`` is some other server's page."""
    if content_type == "application/json":  # the API's own: no need to take it apart
        return True
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    kind, slash, subtype = media.partition("/")
    return (
        kind == "application" and bool(slash) and (subtype == "json" or subtype.endswith("+json"))
    )


def _error_kind(exc: httpx.HTTPError) -> str:
    name = type(exc).__name__
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


def _host_header(url: httpx.URL) -> str:
    """The Host header as sent (and HMAC-signed): ASCII (punycode), port if not default."""
    default = {"http": 80, "https": 443}.get(url.scheme)
    raw = url.raw_host.decode("ascii")
    host = raw if ":" not in raw else f"[{raw}]"
    return host if url.port in (None, default) else f"{host}:{url.port}"


# The bits a version 4 UUID (RFC 4122 variant) fixes, and where they go.
_UUID4_CLEAR = ~((0xF << 76) | (0xC << 60))
_UUID4_SET = (0x4 << 76) | (0x8 << 60)


def request_ids() -> Iterator[str]:
    """Fresh X-Request-IDs: random version 4 UUIDs, written as ``str(uuid.uuid4())``
    writes them, from os.urandom as uuid4 takes them, read 256 at a time (one
    system call each, and no UUID object per request)."""
    while True:
        block = os.urandom(16 * 256)
        for at in range(0, len(block), 16):
            h = f"{int.from_bytes(block[at : at + 16]) & _UUID4_CLEAR | _UUID4_SET:032x}"
            yield f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


USER_AGENT = f"revoker/{__version__}"
# A recorded message's length: the API's own (JSON) message, or the start of another body.
MESSAGE_MAX_JSON = 500
MESSAGE_MAX_TEXT = 200


class AgoraClient:
    """Media Gateway calls. Use as ``async with AgoraClient(...) as client``."""

    def __init__(
        self,
        settings: ClientSettings,
        credentials: Credentials,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        keys: KeyDigests | None = None,
    ) -> None:
        """``keys``: the run's keys, masked in what is said to a request that names none."""
        if settings.auth not in ("basic", "hmac"):
            raise UsageError(f"unknown auth scheme {settings.auth!r} (basic or hmac)")
        self.settings = settings
        self._credentials = credentials
        self._basic = basic_header(credentials)
        # What a server must not get echoed into a record.
        self._secrets = credentials.secrets
        self._keys = keys
        self._bases = [_transport.BaseURL(base) for base in settings.base_urls]
        self._hosts = [_host_header(base.url) for base in self._bases]
        # Each request's headers but its X-Request-ID (and HMAC's), encoded once.
        self._head = [
            [
                (b"Host", host.encode("ascii")),
                (b"Accept", b"application/json"),
                # small answers; a compressed one is still capped
                (b"Accept-Encoding", b"identity"),
                (b"User-Agent", USER_AGENT.encode("ascii")),
            ]
            for host in self._hosts
        ]
        self._basic_raw = (b"Authorization", self._basic.encode("ascii"))
        self._hmac = settings.auth == "hmac"
        self._active = 0
        self._request_ids = request_ids()
        limits = httpx.Limits(
            max_connections=max(settings.concurrency, 1),
            max_keepalive_connections=max(settings.concurrency, 1),
        )
        if transport is None:
            tls = any(base.url.scheme == "https" for base in self._bases)
            transport = _transport.make_transport(limits, tls=tls)
        # Requests go straight to the transport, as httpx.AsyncClient would send them
        # with follow_redirects=False, no cookie jar and trust_env=False, but without
        # the client's per-request work (URL merging, auth and redirect wrappers,
        # cookies), which none of these requests needs.
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
        self,
        method: str,
        path: str,
        *,
        query: str = "",
        body: bytes = b"",
        echoes: tuple[str, ...] = (),
    ) -> ApiResponse:
        """One attempt of ``method path`` on the active host; ``echoes``: the key's forms,
        blanked (as the credentials are) in the message and request ID the server sends.
        A request without ``echoes`` (a listing, a create) has the run's keys blanked
        there instead: a server that echoes a key it was never sent is not trusted either."""
        index = self._active
        # path and query are percent-encoded already (segment, quote): httpx keeps them as is.
        url = self._bases[index].join(path, query)
        host = self._hosts[index]
        request_id = next(self._request_ids)
        headers = [*self._head[index], (b"X-Request-ID", request_id.encode("ascii"))]
        if self._hmac:
            raw_path = url.raw_path.decode("ascii")
            signed = hmac_headers(
                self._credentials, host=host, method=method, path=raw_path, body=body
            )
            headers += [
                (name.encode("ascii"), value.encode("ascii")) for name, value in signed.items()
            ]
        else:
            headers.append(self._basic_raw)
        if body:
            headers += [
                (b"Content-Type", b"application/json"),
                (b"Content-Length", str(len(body)).encode("ascii")),
            ]
        started = time.perf_counter()
        try:
            # Headers as bytes and the body as a stream: httpx takes them as they are,
            # without encoding the headers and merging its defaults into them again.
            request = httpx.Request(
                method,
                url,
                headers=headers,
                stream=httpx.ByteStream(body),
                extensions=self._extensions,
            )
            response = await self._transport.handle_async_request(request)
            fields = _answer_headers(response.headers)
            content = await _read(response, fields)
        except httpx.HTTPError as exc:  # transport errors, and a body that cannot be decoded
            ms = int((time.perf_counter() - started) * 1000)
            connect = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
            if connect:
                self._note_connect_failure(index)
            raise TransportFailure(_error_kind(exc), host, connect, request_id, ms) from None
        ms = int((time.perf_counter() - started) * 1000)
        keys = None if echoes else self._keys
        return _to_api_response(
            response, content, request_id, host, ms, self._secrets, echoes, keys, fields
        )

    async def delete_key(self, region: str, app_id: str, key: str | StreamKey) -> ApiResponse:
        key = key if isinstance(key, StreamKey) else StreamKey.of(key)
        return await self.request("DELETE", key_path(region, app_id, key), echoes=key.forms)

    async def get_key(self, region: str, app_id: str, key: str | StreamKey) -> ApiResponse:
        key = key if isinstance(key, StreamKey) else StreamKey.of(key)
        return await self.request("GET", key_path(region, app_id, key), echoes=key.forms)

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


# The answer's headers revoker reads, by lower-case name.
_ANSWER_HEADERS = frozenset({b"x-request-id", b"retry-after", b"content-type", b"content-encoding"})


def _answer_headers(headers: httpx.Headers) -> dict[bytes, str]:
    """The headers of :data:`_ANSWER_HEADERS` present, as ``headers.get`` gives them
    (repeats joined with ", "), found in one pass instead of one per name."""
    found: dict[bytes, bytes] = {}
    for name, value in headers.raw:
        key = name.lower()
        if key in _ANSWER_HEADERS:
            found[key] = found[key] + b", " + value if key in found else value
    try:
        # ASCII decodes alike in each encoding httpx may pick for the whole set.
        return {key: value.decode("ascii") for key, value in found.items()}
    except UnicodeDecodeError:
        return {key: headers[key.decode("ascii")] for key in found}


async def _read(response: httpx.Response, fields: dict[bytes, str]) -> bytes:
    """The answer's body, the response closed; ``fields``: its :func:`_answer_headers`.

    Bytes in hand with no ``Content-Encoding`` left on them (the production
    transport decodes under its cap, and says so) are taken as they are: what
    httpx's identity decoder would give, with nothing to release.
    """
    stream = response.stream
    if isinstance(stream, httpx.ByteStream) and b"content-encoding" not in fields:
        return b"".join(stream)
    try:
        return await response.aread()
    finally:
        await response.aclose()


def _to_api_response(
    response: httpx.Response,
    content: bytes,
    request_id: str,
    host: str,
    ms: int,
    secrets: tuple[str, ...],
    echoes: tuple[str, ...] = (),
    keys: KeyDigests | None = None,
    fields: dict[bytes, str] | None = None,
) -> ApiResponse:
    """The answer reduced; every string from the server passes the redactor.
    ``fields``: its :func:`_answer_headers`, if read already.

    ``data`` keeps the key's forms (``echoes``): matching and rotate decide on its
    exact text, and the audit log masks them where it records data. The message and
    request ID are recorded as they are, so both lose them here.
    """
    if fields is None:
        fields = _answer_headers(response.headers)
    blanked = echoes + secrets
    body: Any = None
    try:
        body = loads(content)
    except ValueError:  # not JSON, or nested too deep to be the API's
        body = None
    message: str | None = None
    limit = MESSAGE_MAX_TEXT
    data: Any = None
    if isinstance(body, dict):
        data = server_data(body.get("data"), secrets)
        if response.status_code != 200:
            raw = body.get("message")
            message, limit = (str(raw), MESSAGE_MAX_JSON) if raw is not None else (None, limit)
    if response.status_code != 200 and message is None:
        # As httpx's Response.text decodes it (charset, else UTF-8; bad bytes replaced).
        text = content.decode(response.encoding or "utf-8", errors="replace").strip()
        message = text if text else response.reason_phrase or None
    echoed = fields.get(b"x-request-id")
    return ApiResponse(
        status=response.status_code,
        request_id=request_id,
        # Our own request ID echoed (the usual answer) is no key: no scan for one.
        server_request_id=server_request_id(
            echoed, blanked, None if echoed == request_id else keys
        ),
        host=host,
        ms=ms,
        # Redacted before it is cut: a cut must not keep half a secret that redaction
        # of the whole would have blanked.
        message=None if message is None else server_text(message, blanked, limit, keys),
        data=data,
        retry_after=parse_retry_after(fields.get(b"retry-after")),
        # The API echoes the X-Request-ID it was sent; a front proxy, a catch-all
        # page or another service under a wrong base path does not answer in this shape.
        api_answer=(
            isinstance(body, dict)
            and body.get("status") == ("success" if response.status_code == 200 else "error")
            and echoed == request_id
            and json_media_type(fields.get(b"content-type"))
        ),
    )
