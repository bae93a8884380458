"""``revoker show KEY``: query one key in every region (read-only, no audit log)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from revoker.agora.auth import Credentials
from revoker.agora.client import AgoraClient
from revoker.engine.jobs import query_task
from revoker.engine.pacing import RateLimits
from revoker.engine.pool import Context, Halt
from revoker.engine.retry import RetryPolicy
from revoker.models import Outcome, Task, TaskResult, key_hint, key_id
from revoker.redact import printable_lines
from revoker.results import HaltReason, exit_code_for
from revoker.settings import ClientSettings, RetrySettings


def iso(unix: Any) -> str | None:
    """Unix seconds (int or string) -> RFC 3339 UTC; None if unreadable."""
    try:
        return datetime.fromtimestamp(int(str(unix)), UTC).isoformat().replace("+00:00", "Z")
    except (TypeError, ValueError, OverflowError, OSError):
        return None


@dataclass
class RegionView:
    """What one region says about the key."""

    region: str
    outcome: str
    present: bool | None
    http_status: int | None
    channel: str | None = None
    uid: str | None = None
    created: str | None = None
    expires: str | None = None  # ISO time, "never", or None
    message: str | None = None
    request_id: str | None = None
    server_request_id: str | None = None

    @classmethod
    def from_result(cls, result: TaskResult) -> RegionView:
        view = cls(
            region=result.task.region,
            outcome=str(result.outcome),
            present={Outcome.PRESENT: True, Outcome.ABSENT: False}.get(result.outcome),
            http_status=result.http_status,
            message=result.message if result.outcome is Outcome.FAILED else None,
            request_id=result.request_id,
            server_request_id=result.server_request_id,
        )
        data = result.data if result.outcome is Outcome.PRESENT else None
        if isinstance(data, dict):
            view.channel = str(data.get("channel", "")) or None
            view.uid = str(data.get("uid", "")) or None
            view.created = iso(data.get("createdAt"))
            try:
                after = int(data.get("expiresAfter") or 0)
                created = int(str(data.get("createdAt")))
            except (TypeError, ValueError, OverflowError):
                view.expires = None
            else:
                view.expires = "never" if after <= 0 else iso(created + after)
        return view


@dataclass
class ShowReport:
    app_id: str
    key: str
    regions: list[RegionView] = field(default_factory=list)
    halt_reason: HaltReason | None = None

    @property
    def exit_code(self) -> int:
        unknown = any(v.present is None for v in self.regions)
        return exit_code_for(self.halt_reason, problems=unknown)

    def to_dict(self) -> dict[str, Any]:
        return {
            "app_id": self.app_id,
            "key_id": key_id(self.key),
            "key_hint": key_hint(self.key),
            "exit_code": self.exit_code,
            "halt_reason": self.halt_reason,
            "regions": [vars(v) for v in self.regions],
        }


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
            ctx = Context(client, RetryPolicy.from_settings(retry or RetrySettings()), limits, halt)
            results = await asyncio.gather(
                *(query_task(ctx, Task(app_id, region, key)) for region in regions)
            )
        report = ShowReport(app_id, key, [RegionView.from_result(r) for r in results])
        report.halt_reason = halt.reason
        return report

    return asyncio.run(run())


def render_show(report: ShowReport, fmt: str) -> str:
    from revoker.render.summary import table

    if fmt == "json":
        return json.dumps(report.to_dict(), indent=2)
    rows = [["region", "present", "channel", "uid", "created", "expires"]]
    for v in report.regions:
        present = {True: "yes", False: "no", None: f"? ({v.outcome})"}[v.present]
        rows.append(
            [v.region, present, v.channel or "-", v.uid or "-", v.created or "-", v.expires or "-"]
        )
    lines = [f"key {key_hint(report.key)} ({key_id(report.key)}) in app {report.app_id}"]
    lines += ["  " + line for line in table(rows, numeric=False)]
    for v in report.regions:
        if v.present is None:
            lines.append(
                f"  {v.region}: {v.outcome} HTTP {v.http_status} {v.message or ''} "
                f"request_id={v.request_id} server_request_id={v.server_request_id}"
            )
    if report.halt_reason == HaltReason.AUTH_REJECTED:
        lines.append("credentials rejected (401)")
    return printable_lines("\n".join(lines))
