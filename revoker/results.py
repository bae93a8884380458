"""What a run produces and every renderer reads: plan counts, pass totals, the report.

Plain data with no I/O, so the engine fills it and the renderers show it without
either importing the other. The one rule that turns a result into an exit code
lives here too (errors map through ``RevokerError.exit_code``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from revoker.errors import EXIT_ABORTED, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, InputError
from revoker.models import (
    REGIONS,
    Outcome,
    Task,
    TaskResult,
    event_outcomes,
    is_problem,
    key_hint,
    key_id,
)
from revoker.redact import key_forms, redact

# The version of the ``--output json`` documents (revoker/schemas/): raised only when a
# field is renamed, removed or changes meaning; new fields keep it.
SCHEMA_VERSION = 1
# Counted in every pass's ``extra`` of the JSON summary, 0 when none was seen.
SUMMARY_EXTRA_DEFAULT = "throttled_429"


class HaltReason(StrEnum):
    """Why a run stopped taking new work; written as is to the audit log and summaries."""

    INTERRUPTED = "interrupted"  # a stop signal (SIGINT, SIGTERM, SIGHUP)
    AUTH_REJECTED = "auth_rejected"  # a 401: every further request would be rejected too
    AUDIT_WRITE_FAILED = "audit_write_failed"  # nothing may be done that cannot be recorded
    NEW_KEYS_FILE_FAILED = "new_keys_file_failed"  # rotate: a new key could not be saved


def exit_code_for(halt_reason: str | None, *, problems: bool) -> int:
    """The one place a result becomes an exit code: the halt first, then any problem."""
    if halt_reason == HaltReason.AUTH_REJECTED:
        return EXIT_ABORTED
    if halt_reason == HaltReason.INTERRUPTED:
        return EXIT_INTERRUPTED
    if halt_reason == HaltReason.AUDIT_WRITE_FAILED or problems:
        return EXIT_FAILED
    return EXIT_OK


@dataclass
class PlanStats:
    """What a plan holds, counted in the validation pass."""

    rows: int = 0
    keys: int = 0
    tasks: int = 0
    duplicates: int = 0
    out_of_shard: int = 0
    already_done: int = 0
    per_app_region: Counter[tuple[str, str]] = field(default_factory=Counter)
    # Keys planned in fewer regions than the run's (a CSV regions column).
    partial_keys: int = 0
    already_done_per_region: Counter[str] = field(default_factory=Counter)
    sample: list[Task] = field(default_factory=list)
    invalid: list[InputError] = field(default_factory=list)
    invalid_count: int = 0

    def to_dict(self) -> dict[str, Any]:
        per_app: dict[str, dict[str, int]] = {}
        for (app, region), count in sorted(self.per_app_region.items()):
            per_app.setdefault(app, {})[region] = count
        return {
            "rows": self.rows,
            "keys": self.keys,
            "tasks": self.tasks,
            "duplicates_skipped": self.duplicates,
            "out_of_shard": self.out_of_shard,
            "already_done": self.already_done,
            "invalid_rows": self.invalid_count,
            "keys_in_fewer_regions": self.partial_keys,
            "per_app_region": per_app,
            "sample": [
                {"app_id": t.app_id, "region": t.region, "key_hint": key_hint(t.key)}
                for t in self.sample
            ],
        }


@dataclass
class Totals:
    """Counts of one pass over the tasks, for the summary and ``run_finished``."""

    event: str
    counts: Counter[str] = field(default_factory=Counter)
    per_region: dict[str, Counter[str]] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    unrecorded: list[TaskResult] = field(default_factory=list)
    # The audit lines of ``unrecorded`` (keys masked), for the fallback file.
    unrecorded_records: list[dict[str, Any]] = field(default_factory=list)
    extra: Counter[str] = field(default_factory=Counter)
    # Totals of the follow-up lines (TaskResult.follow_ups) of this pass, by event.
    related: dict[str, Totals] = field(default_factory=dict)

    MAX_FAILURES = 100

    def add(self, result: TaskResult) -> None:
        outcome = str(result.outcome)
        self.counts[outcome] += 1
        region = self.per_region.get(result.task.region)
        if region is None:  # not setdefault: that builds a Counter for every result
            region = self.per_region[result.task.region] = Counter()
        region[outcome] += 1
        if result.outcome is Outcome.FAILED and len(self.failures) < self.MAX_FAILURES:
            self.failures.append(
                {
                    "app_id": result.task.app_id,
                    "region": result.task.region,
                    "key_id": result.task.key_id,
                    "key_hint": result.task.key_hint,
                    "http_status": result.http_status,
                    "message": result.message,
                    "request_ids": result.request_ids,
                    "server_request_id": result.server_request_id,
                }
            )

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def problems(self) -> bool:
        """Whether any task of the pass ended in an outcome that is not a success."""
        return any(n and is_problem(self.event, outcome) for outcome, n in self.counts.items())

    def to_dict(self) -> dict[str, Any]:
        return {
            "counts": dict(sorted(self.counts.items())),
            "per_region": {r: dict(sorted(c.items())) for r, c in sorted(self.per_region.items())},
            **({"extra": dict(self.extra)} if self.extra else {}),
        }

    def summary_dict(self, regions: tuple[str, ...]) -> dict[str, Any]:
        """The pass for ``--output json``: every outcome of the event and every region
        of the run is present, with 0 when nothing ended so (a script reads
        ``.revoke.counts.revoked`` without a default)."""

        def filled(counts: Counter[str]) -> dict[str, int]:
            names = [str(o) for o in event_outcomes(self.event)]
            names += sorted(set(counts) - set(names))
            return {name: counts.get(name, 0) for name in sorted(names)}

        per_region = {r: filled(self.per_region.get(r, Counter())) for r in regions}
        per_region.update(
            {r: filled(c) for r, c in sorted(self.per_region.items()) if r not in per_region}
        )
        return {
            "tasks": self.total,
            "counts": filled(self.counts),
            "per_region": per_region,
            "extra": {SUMMARY_EXTRA_DEFAULT: 0, **self.extra},
            "failures": self.failures,
        }


NOT_FOUND_CAUSES = (
    "a typo or a key missing characters (copied from chat, cut in a ticket)",
    "another app ID (--app-id / AGORA_APP_ID, or the app_id column)",
    "a redacted or truncated scanner finding",
    "a key revoked earlier with another audit log",
)
UNFINISHED_CAUSE = (
    "a run in this audit log never finished: if it was killed between a DELETE's "
    "answer and its audit line, that key was revoked without a record"
)


@dataclass
class NotFoundKey:
    """A key every region answered "not found" for, and no run in the log deleted."""

    app_id: str
    key_id: str
    key_hint: str
    regions: list[str] = field(default_factory=list)


@dataclass
class KeyVerdicts:
    """Per key, over its regions: revoked (a DELETE of it succeeded somewhere, in this
    run or an earlier one in the same audit log) or not found (found in no region).

    "Not found" is never "revoked": revoker cannot tell a key already gone from one
    that never existed. ``absent_ok`` (``--absent-ok``) accepts such keys as done.
    """

    keys: int = 0
    revoked: int = 0
    rotated: int = 0  # rotate: keys with a replacement created in some region
    not_found: int = 0
    unsettled: int = 0  # keys with a failed or not attempted pair: see the pass's failures
    absent_ok: bool = False
    samples: list[NotFoundKey] = field(default_factory=list)
    # App IDs none of whose keys was found: (app ID, its keys), the likely mistake.
    apps_not_found: list[tuple[str, int]] = field(default_factory=list)
    unfinished_runs: int = 0
    # Live streams (the listing before the first DELETE) pushed with these keys.
    live_streams: int = 0
    # verify: absent is what it checks for, so keys found nowhere change no exit code;
    # only an app ID none of whose keys was ever found is pointed out.
    advisory: bool = False

    MAX_SAMPLES = 1000

    @property
    def problems(self) -> bool:
        return bool(self.not_found) and not (self.absent_ok or self.advisory)

    def causes(self) -> list[str]:
        """The likely causes of the not-found keys, most likely first."""
        return [*NOT_FOUND_CAUSES, *([UNFINISHED_CAUSE] if self.unfinished_runs else [])]

    def _totals(self) -> dict[str, Any]:
        return {
            "keys": self.keys,
            "revoked": self.revoked,
            "rotated": self.rotated,
            "not_found": self.not_found,
            "unsettled": self.unsettled,
            "absent_ok": self.absent_ok,
        }

    def counts(self) -> dict[str, Any]:
        """The counts alone (``run_finished``'s ``keys``): no per-key detail."""
        return {**self._totals(), "apps_not_found": [app for app, _ in self.apps_not_found]}

    def to_dict(self) -> dict[str, Any]:
        return {
            **self._totals(),
            "not_found_keys": [vars(k) for k in self.samples],
            "apps_not_found": [{"app_id": a, "keys": n} for a, n in self.apps_not_found],
            "not_found_causes": self.causes() if self.not_found else [],
            "live_streams": self.live_streams,
        }


@dataclass
class RunReport:
    """The result of one command: what the summary shows and the exit code."""

    command: str
    run_id: str
    audit_log: Path | None
    plan: PlanStats
    passes: list[Totals] = field(default_factory=list)
    halt_reason: HaltReason | None = None
    dry_run: bool = False
    exit_code: int = EXIT_OK
    notes: list[str] = field(default_factory=list)
    audit_head: str | None = None  # hash of the audit log's last line (revoker.audit.chain)
    # Where the tasks the audit log refused were saved (None: nowhere but the summary).
    unrecorded_file: Path | None = None
    # revoke and rotate: the verdict per key (None for the other commands).
    keys: KeyVerdicts | None = None
    regions: tuple[str, ...] = REGIONS  # the regions the run was given
    # App IDs the listing before the first DELETE refused (400 invalid, 403 not enabled).
    refused_apps: tuple[str, ...] = ()

    @property
    def unrecorded(self) -> list[TaskResult]:
        return [r for p in self.passes for r in p.unrecorded]

    def pass_for(self, event: str) -> Totals | None:
        return next((p for p in self.passes if p.event == event), None)

    def to_dict(self) -> dict[str, Any]:
        """Every fact of the report; the renderer adds its ``verdict`` sentence."""
        return {
            "schema_version": SCHEMA_VERSION,
            "command": self.command,
            "run_id": self.run_id,
            "dry_run": self.dry_run,
            "exit_code": self.exit_code,
            "halt_reason": self.halt_reason,
            "audit_log": str(self.audit_log) if self.audit_log else None,
            "audit_head": self.audit_head,
            "plan": self.plan.to_dict(),
            "regions": list(self.regions),
            **({"keys": self.keys.to_dict()} if self.keys is not None else {}),
            **{p.event: p.summary_dict(self.regions) for p in self.passes},
            "unrecorded": [
                {
                    "app_id": r.task.app_id,
                    "region": r.task.region,
                    "key_hint": r.task.key_hint,
                    "outcome": str(r.outcome),
                    "request_ids": r.request_ids,
                }
                for r in self.unrecorded
            ],
            "unrecorded_file": str(self.unrecorded_file) if self.unrecorded_file else None,
            "notes": self.notes,
        }


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
            forms = key_forms(result.task.key)  # a server may echo the key as its channel
            view.channel = redact(str(data.get("channel", "")), forms) or None
            view.uid = redact(str(data.get("uid", "")), forms) or None
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
        unknown = any(v.present is None for v in self.regions)
        return exit_code_for(self.halt_reason, problems=unknown)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "command": "show",
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
    # Keys no stream matched whose channel and uid have a live stream under a URL
    # naming another key: possibly theirs, never silently "no streams".
    left_running: list[dict[str, Any]] = field(default_factory=list)

    @property
    def matched(self) -> list[StreamRow]:
        return [r for r in self.rows if r.match]

    @property
    def exit_code(self) -> int:
        problems = bool(self.matched or self.failures or self.left_running)
        return exit_code_for(self.halt_reason, problems=problems)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "command": "streams",
            "exit_code": self.exit_code,
            "live_matched": len(self.matched),
            "halt_reason": self.halt_reason,
            "streams": [vars(r) for r in self.rows],
            "failures": self.failures,
            "left_running": self.left_running,
        }
