"""``revoker report``: merge audit logs (shards, resumed runs) into one verdict.

For every task (app ID, region, key ID, event; plus the SID for
``disconnect`` lines) the latest record wins: latest by ``ts``, then by the
order the logs were given and the line order. Counts per event, region and
outcome; every problem with its request IDs and the server's message.
Problems: a latest outcome that is not a success for its event
(:func:`revoker.models.is_problem`: ``failed``, ``not_attempted``, ``unknown``,
a ``verify`` that still found the key ``present``). A halted run's ``not_started`` line (the
tasks it never started, by count) adds that many ``not_attempted`` tasks,
unless a later ``--resume`` run in the same log finished.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from revoker.audit.evidence import DELETING_EVENTS, record_deleted_key
from revoker.audit.log import ReadStats, iter_records
from revoker.audit.timeline import Timeline
from revoker.errors import EXIT_FAILED, EXIT_OK, AuditLogError
from revoker.models import REGIONS
from revoker.models import is_problem as is_problem_outcome
from revoker.results import KeyVerdicts, NotFoundKey

TASK_EVENTS = ("revoke", "verify", "query", "disconnect", "rotate")

TaskKey = tuple[str, str, str, str, str]
# The commands whose keys get a verdict of their own: revoked, or not found anywhere.
KEY_VERDICT_COMMANDS = ("revoke", "rotate")
# The event with one line per planned task (run_started's counts.tasks), by command.
PLANNED_EVENT = {"revoke": "revoke", "verify": "verify", "prune": "query", "rotate": "rotate"}


def record_is_problem(record: dict[str, Any]) -> bool:
    """Whether a task line's outcome is not a success for its event."""
    return is_problem_outcome(str(record.get("event")), record.get("outcome"))


@dataclass
class LogInfo:
    path: str
    lines: int = 0
    torn: int = 0
    records: int = 0


@dataclass
class AuditReport:
    """The merged state of one or more audit logs."""

    logs: list[LogInfo] = field(default_factory=list)
    latest: dict[TaskKey, dict[str, Any]] = field(default_factory=dict)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    superseded: int = 0
    not_started: list[dict[str, Any]] = field(default_factory=list)
    # Distinct tasks each run recorded, per (run_id, event): a duplicated line counts once,
    # so it cannot stand in for a deleted one.
    task_lines: Counter[tuple[str, str]] = field(default_factory=Counter)
    _recorded: set[tuple[str, TaskKey]] = field(default_factory=set, repr=False)
    # (app ID, key ID) of every key some line shows deleted (a DELETE answered 200).
    deleted: set[tuple[str, str]] = field(default_factory=set)
    _keys: KeyVerdicts | None = field(default=None, repr=False, compare=False)

    @property
    def torn(self) -> int:
        return sum(log.torn for log in self.logs)

    def counts(self) -> dict[str, dict[str, Counter[str]]]:
        """event -> region -> outcome -> count (latest outcome per task)."""
        out: dict[str, dict[str, Counter[str]]] = {}
        for (event, _app, region, _kid, _sid), record in self.latest.items():
            outcome = str(record.get("outcome"))
            out.setdefault(event, {}).setdefault(region, Counter())[outcome] += 1
        for line in self.pending_not_started():
            for region, count in line["per_region"].items():
                out.setdefault(line["for_event"], {}).setdefault(region, Counter())[
                    "not_attempted"
                ] += count
        return out

    def pending_not_started(self) -> list[dict[str, Any]]:
        """``not_started`` lines whose tasks no later finished ``--resume`` run took up."""
        return [
            line
            for line in self.not_started
            if not self._resumed_later(self.runs.get(line["run_id"], {"log": line["log"]}))
        ]

    @property
    def task_count(self) -> int:
        return len(self.latest) + sum(int(line["tasks"]) for line in self.pending_not_started())

    def _resumed_later(self, run: dict[str, Any]) -> bool:
        """Whether a later ``--resume`` run of the same command in the same log finished
        (a ``verify --resume`` after a stopped ``revoke`` finishes nothing of it)."""
        return any(
            later.get("log") == run.get("log")
            and later.get("command") == run.get("command")
            and later.get("resume")
            and "finished" in later
            and str(later.get("started", "")) > str(run.get("started", ""))
            for later in self.runs.values()
        )

    def totals(self) -> dict[str, Counter[str]]:
        return {event: sum(regions.values(), Counter()) for event, regions in self.counts().items()}

    def problems(self) -> list[dict[str, Any]]:
        return [r for r in self.latest.values() if record_is_problem(r)]

    def unfinished_runs(self) -> list[dict[str, Any]]:
        """Runs that started but never finished (killed) and that no later
        ``--resume`` run in the same log went on with: their missing tasks
        are in no log at all."""
        unfinished = []
        for run in self.runs.values():
            if "started" not in run or "finished" in run:
                continue
            if not self._resumed_later(run):
                unfinished.append(run)
        return unfinished

    def incomplete_runs(self) -> list[dict[str, Any]]:
        """Finished runs with fewer task lines than their ``run_started`` planned:
        lines were lost or deleted, so "all done" cannot be claimed."""
        incomplete = []
        for run in self.runs.values():
            event = PLANNED_EVENT.get(str(run.get("command")))
            planned = run.get("planned")
            if "finished" not in run or event is None or not isinstance(planned, int):
                continue
            recorded = self.task_lines[(run["run_id"], event)] + sum(
                int(line["tasks"])
                for line in self.not_started
                if line["run_id"] == run["run_id"] and line.get("for_event") == event
            )
            if recorded < planned:
                incomplete.append({**run, "recorded": recorded})
        return incomplete

    def key_verdicts(self) -> KeyVerdicts:
        """Per key of the revoke and rotate runs: revoked (some line shows a DELETE of it
        answered 200), not found (every region's latest line ``absent`` and none shows
        a DELETE), or unsettled (a failed or not attempted pair, a problem already).

        A not-found key is accepted when every run that wrote its latest lines was
        given ``--absent-ok``.
        """
        if self._keys is None:
            self._keys = self._key_verdicts()
        return self._keys

    def _key_verdicts(self) -> KeyVerdicts:
        pairs: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for (event, app_id, _region, kid, _sid), record in self.latest.items():
            if event not in DELETING_EVENTS:
                continue
            run = self.runs.get(str(record.get("run_id")), {})
            if run.get("command") not in KEY_VERDICT_COMMANDS:
                continue
            pairs.setdefault((app_id, kid), []).append(record)
        verdicts = KeyVerdicts(keys=len(pairs), absent_ok=True)
        keys_per_app: Counter[str] = Counter(app for app, _ in pairs)
        nowhere_per_app: Counter[str] = Counter()
        accepted = True
        for (app_id, kid), records in pairs.items():
            if (app_id, kid) in self.deleted:
                verdicts.revoked += 1
                verdicts.rotated += any(r.get("outcome") == "rotated" for r in records)
                continue
            if any(r.get("outcome") != "absent" for r in records):
                verdicts.unsettled += 1
                continue
            verdicts.not_found += 1
            nowhere_per_app[app_id] += 1
            accepted = accepted and all(
                self.runs.get(str(r.get("run_id")), {}).get("absent_ok") for r in records
            )
            if len(verdicts.samples) < KeyVerdicts.MAX_SAMPLES:
                hint = str(records[0].get("key_hint"))
                regions = sorted(str(r.get("region")) for r in records)
                verdicts.samples.append(NotFoundKey(app_id, kid, hint, regions))
        verdicts.absent_ok = accepted and bool(verdicts.not_found)
        verdicts.apps_not_found = sorted(
            (app, n) for app, n in nowhere_per_app.items() if n == keys_per_app[app]
        )
        if verdicts.not_found:
            verdicts.unfinished_runs = len(self.unfinished_runs())
        return verdicts

    @property
    def exit_code(self) -> int:
        if (
            self.unfinished_runs()
            or self.pending_not_started()
            or self.incomplete_runs()
            or any(record_is_problem(r) for r in self.latest.values())
            or self.key_verdicts().problems
        ):
            return EXIT_FAILED
        return EXIT_OK

    def verdict(self) -> str:
        tasks = self.task_count
        unfinished = len(self.unfinished_runs())
        if unfinished:
            return (
                f"{unfinished} run(s) never finished (killed?) and were not resumed: "
                "tasks may be missing from every log; run again with --resume"
            )
        incomplete = self.incomplete_runs()
        if incomplete:
            missing = sum(r["planned"] - r["recorded"] for r in incomplete)
            return (
                f"INCOMPLETE: {len(incomplete)} run(s) recorded fewer task lines than they "
                f"planned ({missing} missing): the log was cut or edited; run again"
            )
        if not tasks:
            return "no task records found"
        problems = len(self.problems()) + sum(t["tasks"] for t in self.pending_not_started())
        keys = self.key_verdicts()
        nowhere = (
            f"{keys.not_found} of {keys.keys} keys NOT FOUND in any region and never "
            "revoked in these logs"
        )
        if problems:
            return (
                f"{problems} of {tasks} tasks NOT done (failed, not attempted, or still present)"
                + (f"; {nowhere}" if keys.problems else "")
            )
        if keys.problems:
            return f"{nowhere}: they are NOT revoked"
        if keys.not_found:
            return (
                f"all {tasks} tasks done; {keys.not_found} of {keys.keys} keys not found in "
                "any region (accepted with --absent-ok)"
            )
        return f"all {tasks} tasks done"

    def to_dict(self) -> dict[str, Any]:
        counts = self.counts()
        return {
            "verdict": self.verdict(),
            "exit_code": self.exit_code,
            "tasks": self.task_count,
            "not_started": [
                {k: line[k] for k in ("run_id", "for_event", "tasks", "per_region")}
                for line in self.pending_not_started()
            ],
            "superseded_records": self.superseded,
            "torn_lines": self.torn,
            "logs": [vars(log) for log in self.logs],
            "runs": list(self.runs.values()),
            "incomplete_runs": self.incomplete_runs(),
            "counts": {
                event: {
                    "total": dict(sorted(self.totals()[event].items())),
                    "per_region": {
                        r: dict(sorted(c.items())) for r, c in region_sorted(regions).items()
                    },
                }
                for event, regions in sorted(counts.items(), key=lambda kv: event_rank(kv[0]))
            },
            "problems": [problem_fields(r) for r in self.problems()],
            "keys": self.key_verdicts().to_dict(),
        }


def event_rank(event: str) -> int:
    """Sort key: task events in pipeline order, unknown ones last."""
    return TASK_EVENTS.index(event) if event in TASK_EVENTS else len(TASK_EVENTS)


def region_sorted(regions: dict[str, Counter[str]]) -> dict[str, Counter[str]]:
    """The same counts, regions in their usual order (unknown ones last, by name)."""

    def rank(region: str) -> tuple[int, str]:
        return (REGIONS.index(region) if region in REGIONS else len(REGIONS), region)

    return {r: regions[r] for r in sorted(regions, key=rank)}


def problem_fields(record: dict[str, Any]) -> dict[str, Any]:
    """What a report shows of one problem task: where, outcome, message, request IDs."""
    attempts = record.get("attempts") or []
    request_ids = [a.get("request_id") for a in attempts if isinstance(a, dict)]
    server_ids = [
        a.get("server_request_id")
        for a in attempts
        if isinstance(a, dict) and a.get("server_request_id")
    ]
    return {
        "event": record.get("event"),
        "app_id": record.get("app_id"),
        "region": record.get("region"),
        "key_id": record.get("key_id"),
        "key_hint": record.get("key_hint"),
        "sid": record.get("sid"),
        "outcome": record.get("outcome"),
        "http_status": record.get("http_status"),
        "message": record.get("message"),
        "request_ids": request_ids or ([record["request_id"]] if record.get("request_id") else []),
        "server_request_ids": server_ids,
        "ts": record.get("ts"),
        "run_id": record.get("run_id"),
    }


def build_report(paths: list[Path], timeline: Timeline | None = None) -> AuditReport:
    """Read every log and merge them; ``timeline``, if given, sees every line too.

    AuditLogError (exit 2) if a log cannot be read or holds no run (no
    ``run_started`` line: empty, compressed, or not an audit log at all).
    """
    report = AuditReport()
    order: dict[TaskKey, tuple[str, int, int]] = {}
    revoked: dict[TaskKey, tuple[tuple[str, int, int], dict[str, Any]]] = {}
    for index, path in enumerate(paths):
        stats = ReadStats()
        info = LogInfo(str(path))
        started = False
        if timeline is not None:
            timeline.start_log(str(path))
        for line, record in enumerate(iter_records(path, stats)):
            info.records += 1
            if timeline is not None:
                timeline.observe(record)
            event = record.get("event")
            if event in ("run_started", "run_finished"):
                started = started or event == "run_started"
                _note_run(report, record, str(path))
                continue
            if event == "not_started":
                _note_not_started(report, record, str(path))
                continue
            if event not in TASK_EVENTS:
                continue
            key: TaskKey = (
                str(event),
                str(record.get("app_id")),
                str(record.get("region")),
                str(record.get("key_id")),
                str(record.get("sid") or "") if event == "disconnect" else "",
            )
            if record.get("phase") in (None, "result"):  # rotate's intent lines are extra
                _note_task_line(report, str(record.get("run_id")), key)
            if event in DELETING_EVENTS and record_deleted_key(record):
                report.deleted.add((key[1], key[3]))
            rank = (str(record.get("ts", "")), index, line)
            was_revoked = event == "revoke" and record.get("outcome") == "revoked"
            if was_revoked and (key not in revoked or revoked[key][0] < rank):
                revoked[key] = (rank, record)
            if key in order:
                report.superseded += 1
                if rank < order[key]:
                    continue
            order[key] = rank
            report.latest[key] = record
        info.lines, info.torn = stats.lines, stats.torn
        if not started:
            raise AuditLogError(
                f"{path}: not a revoker audit log: no run_started line "
                f"({stats.lines} lines read, {stats.torn} unreadable)"
            )
        report.logs.append(info)
    # A key revoked once and found "absent" by a later run (without --resume) was
    # revoked: keep that, rather than a record that says the key never existed.
    for key, (_, record) in revoked.items():
        if report.latest[key].get("outcome") == "absent":
            report.latest[key] = record
    return report


def _note_task_line(report: AuditReport, run_id: str, key: TaskKey) -> None:
    """Count a run's task once however many lines it has (see ``task_lines``)."""
    seen = (run_id, key)
    if seen not in report._recorded:
        report._recorded.add(seen)
        report.task_lines[(run_id, key[0])] += 1


def _note_not_started(report: AuditReport, record: dict[str, Any], path: str) -> None:
    per_region = record.get("per_region")
    if not isinstance(per_region, dict) or not isinstance(record.get("for_event"), str):
        return
    counts = {str(r): n for r, n in per_region.items() if isinstance(n, int) and n > 0}
    report.not_started.append(
        {
            "run_id": str(record.get("run_id")),
            "log": path,
            "for_event": record["for_event"],
            "tasks": sum(counts.values()),
            "per_region": counts,
            "message": record.get("message"),
        }
    )


def _note_run(report: AuditReport, record: dict[str, Any], path: str) -> None:
    run_id = str(record.get("run_id"))
    run = report.runs.setdefault(run_id, {"run_id": run_id, "log": path})
    if record["event"] == "run_started":
        options = record.get("options") or {}
        counts = record.get("counts") or {}
        run.update(
            command=record.get("command"),
            started=record.get("ts"),
            shard=options.get("shard") if isinstance(options, dict) else None,
            resume=bool(options.get("resume")) if isinstance(options, dict) else False,
            absent_ok=bool(options.get("absent_ok")) if isinstance(options, dict) else False,
            planned=counts.get("tasks") if isinstance(counts, dict) else None,
        )
    else:
        run.update(finished=record.get("ts"), exit_code=record.get("exit_code"))
