"""The emulator's ASGI app: the Media Gateway streaming-key and online-stream endpoints.

Order of checks for every API request (admin endpoints under ``/_emulator/`` skip all):

1. ``latency_ms`` sleep (plus ``create_latency_ms`` for a POST), plus a random
   0..``jitter_ms`` (network jitter: requests reach the rate limiter out of the
   rhythm they were sent in);
2. an unknown path or region is answered first, as a front gateway would (an nginx
   HTML 404, no ``X-Request-ID``): what a client with a wrong base path sees;
3. authentication (401, no ``X-Request-ID``);
4. injected faults, decided before any state change: reset (connection dropped),
   5xx error, 429 throttle;
5. routing: known path with the wrong method → 405;
6. forbidden app → 403; an unknown app ID (``--unknown-app``) → 404, 400 or 403;
7. per-app rate limit (per DELETE / GET / POST; sliding window, fixed window or token
   bucket) → 429 with ``Retry-After``;
8. the operation itself.

Keys and SIDs arrive percent-encoded as one path segment, so the router splits the
*raw* path on ``/`` and unquotes each segment; the decoded path is never used.

A reset under uvicorn aborts the TCP transport, so the client sees the connection
drop with no response. Without a transport (``httpx.ASGITransport``) the app raises
:class:`ConnectionReset` instead, which the transport re-raises to the caller.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from typing import IO, Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from revoker.emulator.authcheck import AuthVerifier
from revoker.emulator.config import EmulatorConfig
from revoker.emulator.faults import FaultInjector
from revoker.emulator.limiters import AppLimiters
from revoker.emulator.routes import ALLOWED_METHODS, ApiRoute, parse_path
from revoker.emulator.state import EmulatorState, new_sid
from revoker.models import REGIONS

MSG_AUTH = "Invalid authentication credentials."
MSG_NOT_FOUND = "Resource not found and destroyed."
MSG_FORBIDDEN = "Media Gateway is not enabled for this project. Contact us to enable."
MSG_WRONG_APP = "Stream does not belong to this app ID."
MSG_RATE = "Request rate limit exceeded."
MSG_QUOTA = "Resources quota limit exceeded."
MSG_SETTINGS = "Invalid settings."
MSG_METHOD = "Method not allowed."
MSG_INVALID_APP = "Invalid app ID."

_REGIONS = frozenset(REGIONS)


class ConnectionReset(Exception):
    """Raised by the app for an injected reset when no TCP transport can be aborted."""


_JSON_HEADERS = [(b"content-type", b"application/json")]
_HTML_HEADERS = [(b"content-type", b"text/html")]
# What a front gateway (nginx) answers for a path no API serves, e.g. a wrong base path.
GATEWAY_NOT_FOUND = (
    b"<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n"
    b"<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
_SUCCESS = b'{"status":"success"}'


def _error(message: str) -> bytes:
    return json.dumps({"status": "error", "message": message}).encode()


class Emulator:
    """Holds the config, the state and the counters; handles API requests as raw ASGI."""

    def __init__(self, config: EmulatorConfig, state: EmulatorState) -> None:
        self.config = config
        self.state = state
        self.auth = AuthVerifier(config.credentials)
        self.faults = FaultInjector(
            reset_rate=config.reset_rate,
            error_rate=config.error_rate,
            throttle_rate=config.throttle_rate,
            seed=config.seed,
        )
        self.limiter = AppLimiters(
            {"DELETE": config.delete_rps, "GET": config.get_rps, "POST": config.create_rps},
            config.rate_limit_algorithm,
        )
        # Its own generator, so jitter does not shift the seeded fault draws.
        self.jitter = random.Random(config.seed)
        self.known_apps = set(config.known_apps) | {app for _, app in state.keys}
        self.known_apps |= {stream.app_id for stream in state.streams.values()}
        if config.default_app_id:
            self.known_apps.add(config.default_app_id)
        self.stats: Counter[tuple[str, str]] = Counter()
        self.fault_stats: Counter[str] = Counter()
        self.journal: IO[str] | None = None
        if config.journal is not None:
            self.journal = open(config.journal, "a", encoding="utf-8")  # noqa: SIM115

    def close(self) -> None:
        """Close the journal and save the state file (if configured)."""
        if self.journal is not None:
            self.journal.close()
            self.journal = None
        if self.config.state_path is not None:
            self.state.save(self.config.state_path)

    # ASGI entry point -----------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope["method"]
        raw: bytes = scope.get("raw_path") or scope["path"].encode()
        raw_path = raw.split(b"?", 1)[0].decode("latin-1")
        query: bytes = scope.get("query_string", b"")
        headers = dict(scope["headers"])
        body = await _read_body(receive) if method in ("POST", "PUT", "PATCH") else b""
        rid_in = headers.get(b"x-request-id")
        route = parse_path(raw_path)

        delay = self.config.latency_ms
        if self.config.jitter_ms > 0:
            delay += self.jitter.uniform(0.0, self.config.jitter_ms)
        if method == "POST":
            delay += self.config.create_latency_ms
        if delay > 0:
            await asyncio.sleep(delay / 1000)

        gateway = route is None or route.region not in _REGIONS
        status: int | None
        if route is None or gateway:  # the front gateway's own page: no API behind it
            status, payload, fault, retry_after = 404, GATEWAY_NOT_FOUND, None, 0
        else:
            status, payload, fault, retry_after = self._handle(
                method, raw_path, query, headers, body, route
            )
        echo = status != 401 and not gateway
        rid_out = (rid_in or str(uuid.uuid4()).encode()) if echo else None
        self.stats[(method, str(status) if status is not None else "reset")] += 1
        if fault is not None:
            self.fault_stats[fault] += 1
        if self.journal is not None:
            self._journal(method, raw_path, query, route, rid_in, rid_out, status, fault)

        if status is None:
            await _reset(send)
            return
        kind = _HTML_HEADERS if gateway else _JSON_HEADERS
        out = [*kind, (b"content-length", str(len(payload)).encode())]
        if rid_out is not None:
            out.append((b"x-request-id", rid_out))
        if retry_after:
            out.append((b"retry-after", str(retry_after).encode()))
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": payload})

    # decision -------------------------------------------------------------

    def _handle(
        self,
        method: str,
        raw_path: str,
        query: bytes,
        headers: dict[bytes, bytes],
        body: bytes,
        route: ApiRoute,
    ) -> tuple[int | None, bytes, str | None, int]:
        """Returns (status or None for a reset, body, fault, Retry-After seconds)."""
        target = raw_path + ("?" + query.decode("latin-1") if query else "")
        date = headers.get(b"date")
        digest = headers.get(b"digest")
        if not self.auth.check(
            headers.get(b"authorization"),
            method=method,
            target=target,
            host=self.config.signed_host or headers.get(b"host", b"").decode("latin-1"),
            date=date.decode("latin-1") if date is not None else None,
            digest=digest.decode("latin-1") if digest is not None else None,
            body=body,
        ):
            return 401, _error(MSG_AUTH), "auth", 0

        methods = self.config.fault_methods
        fault = self.faults.draw() if not methods or method in methods else None
        if fault is not None:
            if fault.kind == "reset":
                return None, b"", "reset", 0
            assert fault.status is not None
            return fault.status, _error(fault.message), fault.kind, 1 if fault.status == 429 else 0

        allowed = ALLOWED_METHODS[(route.kind, route.item is not None)]
        if method not in allowed:
            return 405, _error(MSG_METHOD), None, 0
        if route.app_id in self.config.forbidden_apps:
            return 403, _error(MSG_FORBIDDEN), None, 0
        unknown = self.config.unknown_app
        if unknown != "accept" and route.app_id not in self.known_apps:
            if unknown == "400":
                return 400, _error(MSG_INVALID_APP), None, 0
            if unknown == "403":
                return 403, _error(MSG_FORBIDDEN), None, 0
            if route.kind == "keys":
                return 404, _error(MSG_NOT_FOUND), None, 0
            return 404, b'{"status":"error"}', None, 0  # online-streams: "no message"
        if route.kind == "streams" and route.app_id in self.config.quota_exhausted_apps:
            return 429, _error(MSG_QUOTA), "quota", 0
        wait = self.limiter.take(route.app_id, method, time.monotonic())
        if wait:
            return 429, _error(MSG_RATE), "rate_limit", wait

        status, payload = self._operate(method, route, query, body)
        return status, payload, None, 0

    def _operate(
        self, method: str, route: ApiRoute, query: bytes, body: bytes
    ) -> tuple[int, bytes]:
        state, region, app_id, item = self.state, route.region, route.app_id, route.item
        if route.kind == "keys":
            if item is None:  # POST: create
                settings = _parse_settings(body)
                if settings is None:
                    return 400, _error(MSG_SETTINGS)
                key = state.create_key(region, app_id, **settings)
                return 200, _success_data(key.to_api())
            if method == "GET":
                found = state.get_key(region, app_id, item)
                if found is None:
                    return 404, _error(MSG_NOT_FOUND)
                return 200, _success_data(found.to_api())
            if not state.delete_key(region, app_id, item):
                return 404, _error(MSG_NOT_FOUND)
            return 200, _SUCCESS
        now = time.time()
        if item is None:  # GET online-streams
            channel = None
            if query:
                values = parse_qs(query.decode("latin-1")).get("channel")
                channel = values[0] if values else None
            streams = state.list_streams(region, app_id, channel, now=now)
            state.count_listing(region, app_id, now)
            return 200, _success_data([s.to_api() for s in streams])
        if method == "GET":  # one stream: data is an array, empty once it has ended
            stream = state.live_stream(item, now)
            if stream is None or stream.region != region or stream.app_id != app_id:
                return 200, _success_data([])
            return 200, _success_data([stream.to_api()])
        return self._disconnect(region, app_id, item, now)

    def _disconnect(self, region: str, app_id: str, sid: str, now: float) -> tuple[int, bytes]:
        stream = self.state.live_stream(sid, now)
        if stream is None or stream.region != region:
            return 404, _error(MSG_NOT_FOUND)
        if stream.app_id != app_id:
            return 403, _error(MSG_WRONG_APP)
        if stream.ignore_disconnect or stream.ends_at is not None:
            return 200, _SUCCESS  # the command was sent; the stream goes when it goes
        stream.ends_at = now + self.config.disconnect_delay_ms / 1000
        self.state.end_disconnected(now)
        if self.config.reconnect and self.state.get_key(region, app_id, stream.stream_key):
            self.state.add_stream(
                replace(stream, sid=new_sid(), begin_at=now, ends_at=None, start_after_lists=0)
            )
        return 200, _SUCCESS

    # journal and admin ----------------------------------------------------

    def _journal(
        self,
        method: str,
        raw_path: str,
        query: bytes,
        route: ApiRoute | None,
        rid_in: bytes | None,
        rid_out: bytes | None,
        status: int | None,
        fault: str | None,
    ) -> None:
        assert self.journal is not None
        record = {
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "method": method,
            "path": raw_path + ("?" + query.decode("latin-1") if query else ""),
            "region": route.region if route else None,
            "app_id": route.app_id if route else None,
            "key": route.item if route and route.kind == "keys" else None,
            "sid": route.item if route and route.kind == "streams" else None,
            "request_id": rid_in.decode("latin-1") if rid_in is not None else None,
            "response_request_id": rid_out.decode("latin-1") if rid_out is not None else None,
            "status": status,
            "fault": fault,
        }
        self.journal.write(json.dumps(record) + "\n")
        self.journal.flush()

    def stats_snapshot(self) -> dict[str, Any]:
        """Request counts per method and status, for ``GET /_emulator/stats``."""
        by_method: Counter[str] = Counter()
        by_status: Counter[str] = Counter()
        nested: dict[str, dict[str, int]] = {}
        for (method, status), count in sorted(self.stats.items()):
            by_method[method] += count
            by_status[status] += count
            nested.setdefault(method, {})[status] = count
        return {
            "total": sum(self.stats.values()),
            "by_method": dict(by_method),
            "by_status": dict(by_status),
            "by_method_status": nested,
            "faults": dict(self.fault_stats),
        }


def _success_data(data: Any) -> bytes:
    return json.dumps({"status": "success", "data": data}).encode()


def _parse_settings(body: bytes) -> dict[str, Any] | None:
    """The create-key ``settings`` as keyword arguments, or None if invalid."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    settings = doc.get("settings") if isinstance(doc, dict) else None
    if not isinstance(settings, dict):
        return None
    channel, uid = settings.get("channel", ""), settings.get("uid", "")
    expires = settings.get("expiresAfter", 0)
    template = settings.get("templateId")
    if not isinstance(channel, str) or len(channel.encode()) >= 64:
        return None
    if not isinstance(uid, str) or (template is not None and not isinstance(template, str)):
        return None
    if not isinstance(expires, int) or isinstance(expires, bool) or expires < 0:
        return None
    return {"channel": channel, "uid": uid, "expires_after": expires}


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _reset(send: Send) -> None:
    """Drop the connection without a response (see the module docstring)."""
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        raise ConnectionReset("injected connection reset (no transport to abort)")
    transport.abort()
    cycle.disconnected = True  # type: ignore[union-attr]  # uvicorn: no 500 after we return
    await asyncio.sleep(0)


class EmulatorApp(Starlette):
    """Starlette app for the admin routes; API requests go straight to :class:`Emulator`.

    Bypassing Starlette's router keeps the hot path lean, keeps the server's own
    ``send`` (needed to abort the transport on a reset) and never matches on the
    decoded path (a key may hold "%0A", which a route regex would not match).
    """

    emulator: Emulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["path"].startswith("/_emulator/"):
            await self.emulator(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(config: EmulatorConfig, state: EmulatorState | None = None) -> EmulatorApp:
    """Build the emulator app; ``app.emulator`` exposes its state, counters and ``close()``."""
    emulator = Emulator(config, state if state is not None else EmulatorState())

    async def admin_state(request: Request) -> JSONResponse:
        return JSONResponse(emulator.state.snapshot())

    async def admin_stats(request: Request) -> JSONResponse:
        return JSONResponse(emulator.stats_snapshot())

    app = EmulatorApp(
        routes=[
            Route("/_emulator/state", admin_state, methods=["GET"]),
            Route("/_emulator/stats", admin_stats, methods=["GET"]),
        ]
    )
    app.emulator = emulator
    return app
