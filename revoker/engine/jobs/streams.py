"""``revoker streams``: which live streams match the given keys (read-only, no audit log).

Per (app ID, region): one listing of every live stream, and one GET per key
(its channel and uid tie WHIP streams to it); then the same matching as
``revoke --disconnect`` (:mod:`revoker.engine.matching`). Nothing is deleted.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterable
from typing import Any

import httpx

from revoker.agora.client import AgoraClient
from revoker.credentials import Credentials
from revoker.engine.jobs.disconnect_records import Listing, key_identity, list_streams
from revoker.engine.matching import KeyIndex, same_channel_uid
from revoker.engine.sched.calls import query_task
from revoker.engine.sched.pacing import RateLimits
from revoker.engine.sched.pool import Halt, RunContext
from revoker.engine.sched.retry import RetryPolicy
from revoker.models import Outcome, Task, TaskResult
from revoker.redact import KeyDigests, key_forms, server_data
from revoker.results import StreamRow, StreamsReport
from revoker.settings import ClientSettings, RetrySettings


def _failure(task: Task, what: str, result: TaskResult) -> dict[str, Any]:
    return {
        "app_id": task.app_id,
        "region": task.region,
        "key_hint": task.key_hint if what == "lookup" else None,
        "what": what,
        "outcome": str(result.outcome),
        "http_status": result.http_status,
        "message": result.message,
        "request_id": result.request_id,
    }


def _left_running(
    keys: list[Task], lookups: list[TaskResult], index: KeyIndex[Task], listed: Listing
) -> list[dict[str, Any]]:
    """Per key no listed stream matched: each live stream with its channel and uid
    that no key matched either (its URL names another key, or this one unreadably)."""
    entries = listed.entries or []
    found: list[dict[str, Any]] = []
    for task, lookup in zip(keys, lookups, strict=True):
        identity = key_identity(task, lookup)
        own: KeyIndex[Task] = KeyIndex()
        own.add(identity, task)
        if any(own.find(stream, push) for stream, push in entries):
            continue
        for stream, push in entries:
            if same_channel_uid(stream, identity) and index.find(stream, push) is None:
                found.append(
                    {
                        "app_id": task.app_id,
                        "region": task.region,
                        "key_hint": task.key_hint,
                        "key_id": task.key_id,
                        "sid": stream.get("sid"),
                        "protocol": push.protocol,
                        "channel": stream.get("channel"),
                        "uid": stream.get("uid"),
                    }
                )
    return found


def check_streams(
    tasks: Iterable[Task],
    client_settings: ClientSettings,
    credentials: Credentials,
    *,
    retry: RetrySettings,
    get_rps: float = 0.0,
    show_all: bool = False,
    transport: httpx.AsyncBaseTransport | None = None,
) -> StreamsReport:
    """List each (app ID, region) once, GET each key, and match (see the module docstring)."""
    groups: dict[tuple[str, str], list[Task]] = {}
    for task in tasks:
        groups.setdefault((task.app_id, task.region), []).append(task)

    async def run() -> StreamsReport:
        halt = Halt()
        report = StreamsReport()
        limits = {"GET": RateLimits(get_rps), "DELETE": RateLimits(0)}
        gate = asyncio.Semaphore(max(1, client_settings.concurrency))
        # A failed listing's message is redacted of every key given, not only its group's.
        keys = KeyDigests(task.key for group in groups.values() for task in group)
        async with AgoraClient(
            client_settings, credentials, transport=transport, keys=keys
        ) as client:
            ctx = RunContext(client, RetryPolicy.from_settings(retry), limits, halt)

            async def lookup(task: Task) -> Any:
                async with gate:
                    return await query_task(ctx, task)

            async def listing(task: Task) -> Listing:
                async with gate:
                    return await list_streams(ctx, task)

            async def one_group(keys: list[Task]) -> None:
                listed, lookups = await asyncio.gather(
                    listing(keys[0]), asyncio.gather(*(lookup(t) for t in keys))
                )
                index: KeyIndex[Task] = KeyIndex()
                for task, found in zip(keys, lookups, strict=True):
                    index.add(key_identity(task, found), task)
                    if found.outcome not in (Outcome.PRESENT, Outcome.ABSENT):
                        report.failures.append(_failure(task, "lookup", found))
                if listed.entries is None:
                    report.failures.append(_failure(keys[0], "listing", listed.result))
                    return
                report.left_running += _left_running(keys, lookups, index, listed)
                # A hostile server may echo a key as a stream's channel, uid or status.
                forms = tuple(form for task in keys for form in key_forms(task.key))
                shown = functools.partial(server_data, secrets=forms)
                for stream, push in listed.entries:
                    hit = index.find(stream, push)
                    if hit is None and not show_all:
                        continue
                    report.rows.append(
                        StreamRow(
                            keys[0].app_id,
                            keys[0].region,
                            shown(stream.get("sid")),
                            hit[1].kind if hit else None,
                            push.protocol,
                            shown(stream.get("channel")),
                            shown(stream.get("uid")),
                            shown(stream.get("beginAt")),
                            shown(stream.get("status")),
                            hit[0].key_hint if hit else None,
                            hit[0].key_id if hit else None,
                        )
                    )

            await asyncio.gather(*(one_group(keys) for keys in groups.values()))
        report.halt_reason = halt.reason
        report.rows.sort(key=lambda r: (r.app_id, r.region, str(r.sid)))
        return report

    return asyncio.run(run())
