"""Results the engine produces and the renderers read: base data, no I/O.

The engine fills these in; :mod:`revoker.render` turns them into text or JSON;
neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from revoker.errors import EXIT_ABORTED, EXIT_FAILED, EXIT_OK
from revoker.models import Outcome, TaskResult, key_hint, key_id

# The halt reason of a run stopped by rejected credentials (a 401): the engine's
# pool trips it, the reports below turn it into exit code 3.
HALT_AUTH = "auth_rejected"


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
        last = result.last
        view = cls(
            region=result.task.region,
            outcome=str(result.outcome),
            present={Outcome.PRESENT: True, Outcome.ABSENT: False}.get(result.outcome),
            http_status=result.http_status,
            message=result.message if result.outcome is Outcome.FAILED else None,
            request_id=last.request_id if last else None,
            server_request_id=last.server_request_id if last else None,
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
    """What ``revoker show`` found for one key, region by region."""

    app_id: str
    key: str
    regions: list[RegionView] = field(default_factory=list)
    halt_reason: str | None = None

    @property
    def exit_code(self) -> int:
        if self.halt_reason == HALT_AUTH:
            return EXIT_ABORTED
        if any(v.present is None for v in self.regions):
            return EXIT_FAILED
        return EXIT_OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "app_id": self.app_id,
            "key_id": key_id(self.key),
            "key_hint": key_hint(self.key),
            "exit_code": self.exit_code,
            "halt_reason": self.halt_reason,
            "regions": [vars(v) for v in self.regions],
        }


@dataclass
class StreamRow:
    """One live stream: matched to a key (``key_hint``, ``match``) or, with --all, not."""

    app_id: str
    region: str
    sid: Any
    match: str | None
    protocol: str
    channel: Any
    uid: Any
    begin_at: Any
    status: Any
    key_hint: str | None = None
    key_id: str | None = None


@dataclass
class StreamsReport:
    """What ``revoker streams`` found: matching live streams and unchecked places."""

    rows: list[StreamRow] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    halt_reason: str | None = None

    @property
    def matched(self) -> list[StreamRow]:
        return [r for r in self.rows if r.match]

    @property
    def exit_code(self) -> int:
        if self.halt_reason == HALT_AUTH:
            return EXIT_ABORTED
        return EXIT_FAILED if self.matched or self.failures else EXIT_OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "exit_code": self.exit_code,
            "live_matched": len(self.matched),
            "halt_reason": self.halt_reason,
            "streams": [vars(r) for r in self.rows],
            "failures": self.failures,
        }
