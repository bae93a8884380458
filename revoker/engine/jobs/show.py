"""``revoker show KEY``: query one key in every region (read-only, no audit log)."""

from __future__ import annotations

import asyncio

import httpx

from revoker.agora.client import AgoraClient
from revoker.credentials import Credentials
from revoker.engine.sched.calls import query_task
from revoker.engine.sched.pacing import RateLimits
from revoker.engine.sched.pool import Halt, RunContext
from revoker.engine.sched.retry import RetryPolicy
from revoker.models import Task
from revoker.results import RegionView, ShowReport
from revoker.settings import ClientSettings, RetrySettings


def show_key(
    key: str,
    app_id: str,
    regions: tuple[str, ...],
    client_settings: ClientSettings,
    credentials: Credentials,
    *,
    retry: RetrySettings | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> ShowReport:
    """GET ``key`` in every region at once (retries and the 401 breaker included)."""

    async def run() -> ShowReport:
        halt = Halt()
        limits = {m: RateLimits(0) for m in ("DELETE", "GET")}
        async with AgoraClient(client_settings, credentials, transport=transport) as client:
            ctx = RunContext(
                client, RetryPolicy.from_settings(retry or RetrySettings()), limits, halt
            )
            results = await asyncio.gather(
                *(query_task(ctx, Task(app_id, region, key)) for region in regions)
            )
        report = ShowReport(app_id, key, [RegionView.from_result(r) for r in results])
        report.halt_reason = halt.reason
        return report

    return asyncio.run(run())
