"""The production transport: httpx requests sent over aiohttp's connection pool.

Every use of a library's private API on the client side lives in this module,
each pinned by a test in ``tests/agora/test_transport.py`` so an upgrade that
breaks it fails there first:

- ``aiohttp.ClientSession._retry_connection`` (no public switch): turned off so
  aiohttp never resends a request by itself.
- ``httpx.URL._uri_reference`` (the parse a URL holds): :class:`BaseURL` puts each
  request's already-encoded path into the base's parse instead of having httpx parse
  and validate the whole URL again, the costliest part of building a request. Where
  that field is missing, or a path is not made of plain encoded segments, httpx
  parses the URL as before.

Errors leave this module as httpx exceptions; :mod:`revoker.agora.client` turns
them into :class:`~revoker.errors.TransportFailure`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import re
import time
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


# Percent-encoded segments (``segment``) and a query of encoded names and values, which
# httpx's parse keeps exactly as they are: no dot segment, no character it would quote.
_CHAR = r"(?:[A-Za-z0-9_.~-]|%[0-9A-Fa-f]{2})"
_PLAIN_QUERY = re.compile(rf"(?:{_CHAR}|[=&])*")
# A plain path in three quick checks (one pattern with a look-ahead per segment costs
# more than the rest of the join): its characters, its escapes, no "." or ".." segment.
_PATH_CHARS = re.compile(r"/[A-Za-z0-9_.~%/-]*")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_DOT_SEGMENT = re.compile(r"/\.\.?(?:/|$)")


def _plain_path(path: str) -> bool:
    """Whether ``path`` is ``/`` + segments of unreserved characters and ``%XX``
    escapes (empty segments too), none of them ``.`` or ``..``."""
    return (
        _PATH_CHARS.fullmatch(path) is not None
        and ("%" not in path or _BAD_ESCAPE.search(path) is None)
        and ("/." not in path or _DOT_SEGMENT.search(path) is None)
    )


class BaseURL:
    """One base URL, parsed by httpx once, and the request URLs under it."""

    def __init__(self, base: str) -> None:
        self.text = base
        self.url = httpx.URL(base)
        authority_and_path = base.partition("://")[2]
        slash = authority_and_path.find("/")
        self._prefix = authority_and_path[slash:] if slash >= 0 else ""
        parsed = getattr(self.url, "_uri_reference", None)
        # Only a base whose path httpx kept as written (no dot segment, nothing
        # re-encoded, no query): its parse plus a plain path is what parsing the
        # joined string would give.
        plain = (
            isinstance(parsed, tuple)
            and getattr(parsed, "path", None) == self._prefix
            and getattr(parsed, "query", "") is None
            and getattr(parsed, "fragment", "") is None
        )
        self._parsed = parsed if plain else None

    def join(self, path: str, query: str = "") -> httpx.URL:
        """``base + path [+ "?" + query]``, both already percent-encoded."""
        if (
            self._parsed is not None
            and _plain_path(path)
            and (not query or _PLAIN_QUERY.fullmatch(query))
        ):
            url = httpx.URL.__new__(httpx.URL)
            # Private field (see the module docstring).
            url._uri_reference = self._parsed._replace(
                path=self._prefix + path, query=query or None
            )
            return url
        return httpx.URL(self.text + path + (f"?{query}" if query else ""))


# What asyncio counts as due: a timer handle runs once the clock is this close to it.
_CLOCK_RESOLUTION = time.get_clock_info("monotonic").resolution


class _Deadline:
    """One attempt's deadline: its task, and whether the deadline cancelled it."""

    __slots__ = ("cancelling", "done", "expired", "ours", "task")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.cancelling = task.cancelling()
        self.done = self.expired = self.ours = False


class _Deadlines:
    """The deadlines of the attempts in flight, on one timer handle.

    The protocol of ``asyncio.timeout`` (the task is cancelled at its deadline, and
    only that cancellation becomes a timeout), without its object and timer handle
    per attempt: the attempts sit in a heap by deadline, and the one timer is armed
    for the earliest.
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._heap: list[tuple[float, int, _Deadline]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._order = itertools.count()  # equal deadlines: no comparing of _Deadlines

    def start(self, seconds: float) -> _Deadline:
        """The running task's attempt ends in ``seconds``."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop: the old one's timer is gone
            self._loop, self._heap, self._timer = loop, [], None
        task = asyncio.current_task(loop)
        if task is None:
            raise RuntimeError("a deadline needs a task")
        entry = _Deadline(task)
        when = loop.time() + seconds
        heapq.heappush(self._heap, (when, next(self._order), entry))
        if self._timer is None or when < self._timer.when():
            if self._timer is not None:
                self._timer.cancel()
            self._timer = loop.call_at(when, self._expire)
        return entry

    def end(self, entry: _Deadline) -> bool:
        """The attempt is over (called again: no effect); True if its deadline cancelled it."""
        if not entry.done:
            entry.done = True
            heap = self._heap
            while heap and heap[0][2].done:
                heapq.heappop(heap)
            if entry.expired:
                # As asyncio.timeout: the deadline's cancellation is taken back, and the
                # task is still cancelled if something else cancelled it too.
                entry.ours = entry.task.uncancel() <= entry.cancelling
        return entry.ours

    def _expire(self) -> None:
        self._timer = None
        loop, heap = self._loop, self._heap
        if loop is None:
            return
        now = loop.time() + _CLOCK_RESOLUTION
        while heap and (heap[0][2].done or heap[0][0] <= now):
            _, _, entry = heapq.heappop(heap)
            if not entry.done:
                entry.expired = True
                entry.task.cancel()
        if heap:
            self._timer = loop.call_at(heap[0][0], self._expire)


def make_transport(limits: httpx.Limits, *, tls: bool = True) -> httpx.AsyncBaseTransport:
    """The production transport, for every run size: aiohttp's pool under httpx's types.

    httpcore's pool slows down as concurrency rises (README, Benchmarks); one
    transport also means one parser decides what a malformed answer is. ``tls``:
    whether any request may go to an https URL (see :class:`AiohttpTransport`).
    """
    return AiohttpTransport(limits, tls=tls)


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

    Certificates are checked against httpx's CA bundle (certifi), loaded when the
    session opens; built with ``tls=False`` (every base URL plain http, on loopback)
    it is not loaded at all, and an https URL would be checked against the system's
    CAs (aiohttp's default context).
    """

    def __init__(self, limits: httpx.Limits, *, tls: bool = True) -> None:
        self._limits = limits
        self._tls = tls
        self._session: Any = None
        self._timeouts: dict[float | None, Any] = {}
        self._deadlines = _Deadlines()
        # Set by _open: aiohttp and yarl are imported once a request is made, not at
        # start-up, and not looked up again for each request.
        self._client_error: Any = None
        self._url: Any = None

    def _open(self) -> Any:
        import aiohttp
        import yarl

        connector = aiohttp.TCPConnector(
            limit=self._limits.max_connections or 0,
            keepalive_timeout=self._limits.keepalive_expiry,
            ssl=httpx.create_ssl_context(trust_env=False) if self._tls else True,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),  # the API sets no cookies
            auto_decompress=False,  # decoded here, under the size cap
            trust_env=False,
        )
        # Private hook (see the module docstring): no silent resend of a request.
        session._retry_connection = False
        self._client_error = aiohttp.ClientError
        self._url = yarl.URL
        self._session = session
        return session

    def _timeout(self, connect: float | None) -> Any:
        found = self._timeouts.get(connect)
        if found is None:
            from aiohttp import ClientTimeout

            # total=None: the deadline around the whole attempt is our own, below.
            found = ClientTimeout(total=None, sock_connect=connect, connect=connect)
            self._timeouts[connect] = found
        return found

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions.get("timeout") or {}
        deadline = timeout.get("read")
        session = self._session if self._session is not None else self._open()
        clock = None if deadline is None else self._deadlines.start(deadline)
        try:
            response = await session.request(
                request.method,
                # Taken as encoded already: yarl would decode %40 and drop %2E%2E.
                self._url(str(request.url), encoded=True),
                headers=_str_headers(request.headers),
                data=request.read() or None,
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
        except asyncio.CancelledError:
            if clock is not None and self._deadlines.end(clock):
                raise DeadlineExceeded(f"no complete answer within {deadline} s") from None
            raise
        except self._client_error as exc:
            # Before TimeoutError: aiohttp's connect timeout is one too, and it must
            # stay a connect failure (which may switch to the fallback host).
            raise _map_aiohttp_error(exc) from exc
        except TimeoutError:
            raise DeadlineExceeded(f"no complete answer within {deadline} s") from None
        finally:
            if clock is not None:
                self._deadlines.end(clock)
        extensions: dict[str, Any] = {"http_version": b"HTTP/1.1"}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode()
        headers = response.raw_headers
        if "Content-Encoding" in response.headers:
            # The body is decoded already (or was sent as is): httpx must not decode it
            # again, outside the cap.
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
    if declared is not None and "Content-Encoding" not in response.headers:
        # The usual answer: aiohttp's parser reads exactly the declared length, within the cap.
        body: bytes = await response.read()
        return body
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


# Header names as text: the same few names on every request.
_NAMES: dict[bytes, str] = {}


def _str_headers(headers: httpx.Headers) -> list[tuple[str, str]]:
    """The headers as sent, names in their original case."""
    names = _NAMES
    out = []
    for name, value in headers.raw:
        text = names.get(name)
        if text is None:
            text = name.decode("latin-1")
            if len(names) < 256:
                names[name] = text
        out.append((text, value.decode("latin-1")))
    return out


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
