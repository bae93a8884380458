"""Helpers for the emulator tests: an app with known credentials, called over ASGI."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from revoker.agora.auth import basic_header
from revoker.credentials import Credentials
from revoker.emulator.app import EmulatorApp, create_app
from revoker.emulator.config import EmulatorConfig
from revoker.emulator.state import EmulatorState, StreamKey

CREDS = Credentials("test-id", "test-secret")
APP_ID = "app1"
BASE = "http://emu.test"
T = TypeVar("T")


def config(**overrides: Any) -> EmulatorConfig:
    """A config with the test credentials and no rate limits unless overridden."""
    values: dict[str, Any] = {
        "credentials": CREDS,
        "default_app_id": APP_ID,
        "delete_rps": 0,
        "get_rps": 0,
        "create_rps": 0,
        "seed": 1,
    }
    values.update(overrides)
    return EmulatorConfig(**values)


def seeded_state(*keys: str, regions: tuple[str, ...] = ("na", "eu")) -> EmulatorState:
    state = EmulatorState()
    for key in keys:
        for region in regions:
            state.add_key(region, APP_ID, StreamKey(key, "chan", "1001", 0, 1686820170))
    return state


def make_app(state: EmulatorState | None = None, **overrides: Any) -> EmulatorApp:
    return create_app(config(**overrides), state)


def key_path(key: str, region: str = "na", app_id: str = APP_ID) -> str:
    """The API path of a key, percent-encoded as one segment (dots too)."""
    encoded = quote(key, safe="").replace(".", "%2E")
    return f"/{region}/v1/projects/{app_id}/rtls/ingress/streamkeys/{encoded}"


def streams_path(region: str = "na", app_id: str = APP_ID, sid: str | None = None) -> str:
    path = f"/{region}/v1/projects/{app_id}/rtls/ingress/online-streams"
    return path if sid is None else f"{path}/{sid}"


def with_client(app: EmulatorApp, fn: Callable[[httpx.AsyncClient], Awaitable[T]]) -> T:
    """Run ``fn(client)`` with an AsyncClient bound to ``app`` over ASGI, synchronously."""

    async def go() -> T:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url=BASE, headers={"Authorization": basic_header(CREDS)}
        ) as client:
            return await fn(client)

    return asyncio.run(go())


def call(app: EmulatorApp, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One request with Basic auth (override with ``headers={"Authorization": ...}``)."""

    async def go(client: httpx.AsyncClient) -> httpx.Response:
        return await client.request(method, path, **kwargs)

    return with_client(app, go)
