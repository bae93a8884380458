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

What is held per task is what the verdict needs, in arrays: its event, app ID,
region, outcome and run (one small number for the lot), its ``ts`` and where
its line is. The records themselves stay in the log: the few a report shows
(problems, samples) are read again from their place, so memory grows by tens of
bytes a task, not by the size of its records, and not at all with lines that
supersede others. ``--verify`` follows the hash chain in the same pass.
"""

from __future__ import annotations

import hashlib
import os
import re
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from revoker.audit.chain import ChainReport, ChainWalker
from revoker.audit.evidence import DELETING_EVENTS, record_deleted_key
from revoker.audit.log import ReadStats, iter_lines, well_formed
from revoker.audit.timeline import Timeline
from revoker.errors import EXIT_FAILED, EXIT_OK, AuditLogError
from revoker.models import REGIONS
from revoker.models import is_problem as is_problem_outcome
from revoker.results import KeyVerdicts, NotFoundKey

if TYPE_CHECKING:  # cryptography is imported only when signatures are checked
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

TASK_EVENTS = ("revoke", "verify", "query", "disconnect", "rotate")

# What one task's latest line says that a verdict needs: event, app ID, region,
# outcome (as written, None if missing) and run ID.
Combo = tuple[str, str, str, str | None, str]
# The commands whose keys get a verdict of their own: revoked, or not found anywhere.
KEY_VERDICT_COMMANDS = ("revoke", "rotate")
# The event with one line per planned task (run_started's counts.tasks), by command.
PLANNED_EVENT = {"revoke": "revoke", "verify": "verify", "prune": "query", "rotate": "rotate"}

# A line's place: the log's index above these bits, its byte offset below.
_OFFSET_BITS = 40
_OFFSET_MASK = (1 << _OFFSET_BITS) - 1
# Random per process, so no log can be made whose tasks share a digest.
_SALT = os.urandom(16)
_TS_BIAS = 1 << 62
_WRITER_TS = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")


def record_is_problem(record: dict[str, Any]) -> bool:
    """Whether a task line's outcome is not a success for its event."""
    return is_problem_outcome(str(record.get("event")), record.get("outcome"))


def _digest(parts: tuple[str, ...]) -> int:
    """A nonzero 63-bit keyed digest of some strings (repr keeps them apart)."""
    data = repr(parts).encode("utf-8", "surrogatepass")
    value = int.from_bytes(hashlib.blake2b(data, digest_size=8, key=_SALT).digest(), "big")
    return (value >> 1) | 1


class _Index:
    """Slot numbers (0, 1, ... in order of arrival) by digest: open addressing in two
    arrays, about 12 bytes a task where a dict of ints takes over 100."""

    def __init__(self) -> None:
        self.size = 0
        self._mask = (1 << 10) - 1
        self._keys = array("q", [0]) * (self._mask + 1)
        self._slots = array("i", [0]) * (self._mask + 1)

    def slot(self, digest: int) -> int:
        """The slot of ``digest``; a new one (``size`` before the call) if it is new."""
        keys, mask = self._keys, self._mask
        at = (digest >> 1) & mask
        while True:
            held = keys[at]
            if held == digest:
                return self._slots[at]
            if not held:
                break
            at = (at + 1) & mask
        slot = self.size
        keys[at] = digest
        self._slots[at] = slot
        self.size += 1
        if 2 * self.size > mask:
            self._grow()
        return slot

    def _grow(self) -> None:
        old_keys, old_slots = self._keys, self._slots
        mask = self._mask = 2 * self._mask + 1
        keys = self._keys = array("q", [0]) * (mask + 1)
        slots = self._slots = array("i", [0]) * (mask + 1)
        for held, slot in zip(old_keys, old_slots, strict=True):
            if held:
                at = (held >> 1) & mask
                while keys[at]:
                    at = (at + 1) & mask
                keys[at] = held
                slots[at] = slot


class _Stamps:
    """``ts`` values as numbers that order as the strings do: the writer's own form
    packed into its digits, any other string by its place in a table of them."""

    def __init__(self) -> None:
        self._other: list[str] = []
        self._codes: dict[str, int] = {}
        self._second = ""
        self._base = -1

    def code(self, ts: str) -> int:
        if len(ts) == 24 and ts[19] == "." and ts[23] == "Z":
            # Lines come in time order: the second is mostly the last one's.
            second = ts[:19]
            if second != self._second:
                self._second = second
                self._base = -1
                if _WRITER_TS.fullmatch(ts):
                    digits = ts[0:4] + ts[5:7] + ts[8:10] + ts[11:13] + ts[14:16] + ts[17:19]
                    self._base = int(digits) * 1000
            ms = ts[20:23]
            if self._base >= 0 and ms.isascii() and ms.isdigit():
                return self._base + int(ms)
        code = self._codes.get(ts)
        if code is None:
            self._other.append(ts)
            code = self._codes[ts] = -len(self._other)
        return code

    def text(self, code: int) -> str:
        if code < 0:
            return self._other[-code - 1]
        s = f"{code:017d}"
        return f"{s[0:4]}-{s[4:6]}-{s[6:8]}T{s[8:10]}:{s[10:12]}:{s[12:14]}.{s[14:17]}Z"

    def before(self, a: int, b: int) -> bool:
        """Whether the ts of code ``a`` sorts before that of ``b``."""
        if a >= 0 and b >= 0:
            return a < b
        return self.text(a) < self.text(b)


@dataclass
class LogInfo:
    path: str
    lines: int = 0
    torn: int = 0
    records: int = 0


@dataclass
class _Tasks:
    """The latest line of every task, compactly: per slot (a task, in order of first
    appearance) its combo's number, its ts code and its line's place."""

    paths: list[Path] = field(default_factory=list)
    combos: list[Combo] = field(default_factory=list)
    combo: array[int] = field(default_factory=lambda: array("I"))
    ts: array[int] = field(default_factory=lambda: array("q"))
    place: array[int] = field(default_factory=lambda: array("q"))
    # The (app ID, key ID) slot of revoke and rotate tasks (-1 for others).
    pair: array[int] = field(default_factory=lambda: array("i"))
    # Per (app ID, key ID) slot: 1 if some line shows a DELETE of it answered 200.
    deleted: bytearray = field(default_factory=bytearray)
    # Records of logs that cannot be read again (a pipe), by place.
    held: dict[int, dict[str, Any]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.combo)

    def records(self, slots: Iterable[int]) -> Iterator[tuple[int, dict[str, Any]]]:
        """Each slot with its latest record, read again from its log."""
        with ExitStack() as stack:
            handles: dict[int, BinaryIO] = {}
            for slot in slots:
                place = self.place[slot]
                record = self.held.get(place)
                if record is None:
                    index = place >> _OFFSET_BITS
                    handle = handles.get(index)
                    if handle is None:
                        handle = handles[index] = stack.enter_context(self._open(index))
                    record = self._read(index, handle, place & _OFFSET_MASK)
                event, app_id, region, outcome, run_id = self.combos[self.combo[slot]]
                if (
                    record.get("event") != event
                    or str(record.get("app_id")) != app_id
                    or str(record.get("region")) != region
                    or record.get("outcome") != outcome
                    or str(record.get("run_id")) != run_id
                ):
                    raise self._changed(place)
                yield slot, record

    def _open(self, index: int) -> BinaryIO:
        try:
            return self.paths[index].open("rb")
        except OSError as exc:
            raise AuditLogError(
                f"{self.paths[index]}: cannot read audit log ({exc.strerror})"
            ) from None

    def _read(self, index: int, handle: BinaryIO, offset: int) -> dict[str, Any]:
        handle.seek(offset)
        lines = iter_lines(handle)
        found = next(lines, None)
        record = found[3] if found is not None else None
        if record is None or not well_formed(record):
            raise self._changed((index << _OFFSET_BITS) | offset)
        return record

    def _changed(self, place: int) -> AuditLogError:
        path = self.paths[place >> _OFFSET_BITS]
        return AuditLogError(
            f"{path}: changed while the report read it (the line at byte "
            f"{place & _OFFSET_MASK} is not the one read before); run report again"
        )


@dataclass
class AuditReport:
    """The merged state of one or more audit logs."""

    logs: list[LogInfo] = field(default_factory=list)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    superseded: int = 0
    not_started: list[dict[str, Any]] = field(default_factory=list)
    # Distinct tasks each run recorded, per (run_id, event): a duplicated line counts once,
    # so it cannot stand in for a deleted one.
    task_lines: Counter[tuple[str, str]] = field(default_factory=Counter)
    # Each log's hash chain, when build_report was asked to verify it.
    chains: list[ChainReport] = field(default_factory=list)
    _tasks: _Tasks = field(default_factory=_Tasks, repr=False, compare=False)
    _per_combo: Counter[int] = field(default_factory=Counter, repr=False, compare=False)
    _keys: KeyVerdicts | None = field(default=None, repr=False, compare=False)

    @property
    def torn(self) -> int:
        return sum(log.torn for log in self.logs)

    def counts(self) -> dict[str, dict[str, Counter[str]]]:
        """event -> region -> outcome -> count (latest outcome per task)."""
        out: dict[str, dict[str, Counter[str]]] = {}
        combos = self._tasks.combos
        for code, count in self._per_combo.items():
            event, _app, region, outcome, _run = combos[code]
            out.setdefault(event, {}).setdefault(region, Counter())[str(outcome)] += count
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
        pending = sum(int(line["tasks"]) for line in self.pending_not_started())
        return len(self._tasks) + pending

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

    def _combo_codes(self, keep: Any) -> set[int]:
        return {code for code, combo in enumerate(self._tasks.combos) if keep(combo)}

    def _slots(self, codes: set[int]) -> Iterator[int]:
        """The slots whose latest line has one of these combos, in order."""
        if not codes:
            return
        for slot, code in enumerate(self._tasks.combo):
            if code in codes:
                yield slot

    def _problem_codes(self) -> set[int]:
        return self._combo_codes(lambda c: is_problem_outcome(c[0], c[3]))

    @property
    def problem_count(self) -> int:
        """Tasks whose latest outcome is not a success for its event."""
        return sum(self._per_combo[code] for code in self._problem_codes())

    def iter_problems(self) -> Iterator[dict[str, Any]]:
        """The latest record of every problem task, in order of first appearance."""
        for _slot, record in self._tasks.records(self._slots(self._problem_codes())):
            yield record

    def problems(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The first ``limit`` problem records (all if None)."""
        found: list[dict[str, Any]] = []
        for record in self.iter_problems():
            if limit is not None and len(found) >= limit:
                break
            found.append(record)
        return found

    def iter_latest(
        self, event: str | None = None, outcomes: tuple[str, ...] | None = None
    ) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """(event, region, latest record) of every task (of ``event``, with one of
        ``outcomes``), in order of first appearance; records are read again."""
        codes = self._combo_codes(
            lambda c: (event is None or c[0] == event) and (outcomes is None or c[3] in outcomes)
        )
        combos, combo = self._tasks.combos, self._tasks.combo
        for slot, record in self._tasks.records(self._slots(codes)):
            first, _app, region, _outcome, _run = combos[combo[slot]]
            yield first, region, record

    def latest_count(self, event: str, outcomes: tuple[str, ...] | None = None) -> int:
        """How many tasks of ``event`` (with one of ``outcomes``) there are."""
        codes = self._combo_codes(
            lambda c: c[0] == event and (outcomes is None or c[3] in outcomes)
        )
        return sum(self._per_combo[code] for code in codes)

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
        tasks = self._tasks
        combos, combo, pair = tasks.combos, tasks.combo, tasks.pair
        # Per combo: 0 if its tasks get no key verdict, else flags of what its outcome says.
        rotated, not_absent, not_ok, counted = 1, 2, 4, 8
        flags_of = []
        for event, _app, _region, outcome, run_id in combos:
            run = self.runs.get(run_id, {})
            if event not in DELETING_EVENTS or run.get("command") not in KEY_VERDICT_COMMANDS:
                flags_of.append(0)
                continue
            flags_of.append(
                counted
                | (rotated if outcome == "rotated" else 0)
                | (not_absent if outcome != "absent" else 0)
                | (0 if run.get("absent_ok") else not_ok)
            )
        pairs = bytearray(len(tasks.deleted))
        first = array("i", [-1]) * len(tasks.deleted)
        order: list[int] = []
        if any(flags_of):
            for slot, code in enumerate(combo):
                flags = flags_of[code]
                if flags:
                    p = pair[slot]
                    if first[p] < 0:
                        first[p] = slot
                        order.append(p)
                    pairs[p] |= flags
        verdicts = KeyVerdicts(keys=len(order), absent_ok=True)
        keys_per_app: Counter[str] = Counter()
        nowhere_per_app: Counter[str] = Counter()
        accepted = True
        samples: list[int] = []
        for p in order:
            app_id = combos[combo[first[p]]][1]
            keys_per_app[app_id] += 1
            if tasks.deleted[p]:
                verdicts.revoked += 1
                verdicts.rotated += bool(pairs[p] & rotated)
                continue
            if pairs[p] & not_absent:
                verdicts.unsettled += 1
                continue
            verdicts.not_found += 1
            nowhere_per_app[app_id] += 1
            accepted = accepted and not pairs[p] & not_ok
            if len(samples) < KeyVerdicts.MAX_SAMPLES:
                samples.append(p)
        verdicts.samples = self._samples(samples, first, flags_of)
        verdicts.absent_ok = accepted and bool(verdicts.not_found)
        verdicts.apps_not_found = sorted(
            (app, n) for app, n in nowhere_per_app.items() if n == keys_per_app[app]
        )
        if verdicts.not_found:
            verdicts.unfinished_runs = len(self.unfinished_runs())
        return verdicts

    def _samples(
        self, chosen: list[int], first: array[int], flags_of: list[int]
    ) -> list[NotFoundKey]:
        """The not-found keys shown: hint of the first record, every region, sorted."""
        if not chosen:
            return []
        tasks = self._tasks
        regions: dict[int, list[str]] = {p: [] for p in chosen}
        for slot, code in enumerate(tasks.combo):
            if flags_of[code]:
                found = regions.get(tasks.pair[slot])
                if found is not None:
                    found.append(tasks.combos[code][2])
        firsts = tasks.records(first[p] for p in chosen)
        samples = []
        for p, (_slot, record) in zip(chosen, firsts, strict=True):
            app_id = tasks.combos[tasks.combo[first[p]]][1]
            samples.append(
                NotFoundKey(
                    app_id,
                    str(record.get("key_id")),
                    str(record.get("key_hint")),
                    sorted(regions[p]),
                )
            )
        return samples

    @property
    def exit_code(self) -> int:
        if (
            self.unfinished_runs()
            or self.pending_not_started()
            or self.incomplete_runs()
            or self.problem_count
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
        problems = self.problem_count + sum(t["tasks"] for t in self.pending_not_started())
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
        totals = self.totals()
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
                    "total": dict(sorted(totals[event].items())),
                    "per_region": {
                        r: dict(sorted(c.items())) for r, c in region_sorted(regions).items()
                    },
                }
                for event, regions in sorted(counts.items(), key=lambda kv: event_rank(kv[0]))
            },
            "problems": [problem_fields(r) for r in self.iter_problems()],
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


def build_report(
    paths: list[Path],
    timeline: Timeline | None = None,
    *,
    verify: bool = False,
    public_key: Ed25519PublicKey | None = None,
) -> AuditReport:
    """Read every log once and merge them; ``timeline``, if given, sees every line too;
    ``verify`` also follows each log's hash chain (``report.chains``).

    AuditLogError (exit 2) if a log cannot be read or holds no run (no
    ``run_started`` line: empty, compressed, or not an audit log at all).
    """
    report = AuditReport()
    merger = _Merger(report)
    for index, path in enumerate(paths):
        stats = ReadStats()
        info = LogInfo(str(path))
        walker = ChainWalker(str(path), public_key) if verify else None
        if timeline is not None:
            timeline.start_log(str(path))
        merger.start_log(path)
        started = False
        try:
            handle = path.open("rb")
        except OSError as exc:
            raise AuditLogError(f"{path}: cannot read audit log ({exc.strerror})") from None
        with handle:
            for number, offset, line, record in iter_lines(handle, stats):
                if walker is not None:
                    walker.line(number, line, record)
                if record is None or not well_formed(record):
                    stats.torn += 1
                    continue
                info.records += 1
                if timeline is not None:
                    timeline.observe(record)
                event = record["event"]
                if event in ("run_started", "run_finished"):
                    started = started or event == "run_started"
                    _note_run(report, record, str(path))
                elif event == "not_started":
                    _note_not_started(report, record, str(path))
                elif event in TASK_EVENTS:
                    merger.task(record, event, (index << _OFFSET_BITS) | offset)
        info.lines, info.torn = stats.lines, stats.torn
        if not started:
            raise AuditLogError(
                f"{path}: not a revoker audit log: no run_started line "
                f"({stats.lines} lines read, {stats.torn} unreadable)"
            )
        report.logs.append(info)
        if walker is not None:
            report.chains.append(walker.finish())
    merger.finish(paths)
    return report


class _Merger:
    """One pass over the task lines: the latest line of each task wins (by ``ts``,
    then by the order of the logs and lines), counted once per run."""

    def __init__(self, report: AuditReport) -> None:
        self.report = report
        self.tasks = report._tasks
        self.index = _Index()
        self.pairs = _Index()
        self.stamps = _Stamps()
        self.last_pair: tuple[str, str] | None = None
        self.last_pair_slot = -1
        self.combo_codes: dict[Combo, int] = {}
        # The run that last counted each slot (its number + 1; 0 for none).
        self.counted = array("I")
        self.run_codes: dict[str, int] = {}
        # A run's task lines are one block (the log is locked while it writes): a run
        # seen again after another one started was appended later or copied, and is
        # counted again exactly at the end.
        self.last_run = -1
        self.left: set[int] = set()
        self.reopened: set[str] = set()
        # slot -> (ts, place, combo) of its latest "revoked" line while a later line of
        # another outcome is its latest.
        self.revoked: dict[int, int] = {}
        self.rereadable = True
        # (run, slot) of every task line of a log that cannot be read twice (a pipe).
        self.piped: set[tuple[int, int]] = set()

    def start_log(self, path: Path) -> None:
        self.tasks.paths.append(path)
        self.rereadable = path.is_file()

    def task(self, record: dict[str, Any], event: str, place: int) -> None:
        tasks, report = self.tasks, self.report
        app_id = str(record.get("app_id"))
        region = str(record.get("region"))
        key_id = str(record.get("key_id"))
        sid = str(record.get("sid") or "") if event == "disconnect" else ""
        slot = self.index.slot(_digest((event, app_id, region, key_id, sid)))
        outcome = record.get("outcome")
        run_id = str(record.get("run_id"))
        combo: Combo = (event, app_id, region, outcome, run_id)
        code = self.combo_codes.get(combo)
        if code is None:
            code = self.combo_codes[combo] = len(tasks.combos)
            tasks.combos.append(combo)
        ts = self.stamps.code(str(record.get("ts", "")))
        new = slot == len(tasks.combo)
        if new:
            pair = -1
            if event in DELETING_EVENTS:
                # A key's regions come one after another: its pair is mostly the last one.
                if (app_id, key_id) == self.last_pair:
                    pair = self.last_pair_slot
                else:
                    pair = self.pairs.slot(_digest((app_id, key_id)))
                    self.last_pair, self.last_pair_slot = (app_id, key_id), pair
                if pair == len(tasks.deleted):
                    tasks.deleted.append(0)
            tasks.combo.append(code)
            tasks.ts.append(ts)
            tasks.place.append(place)
            tasks.pair.append(pair)
            self.counted.append(0)
        if record.get("phase") in (None, "result"):  # rotate's intent lines are extra
            self._count(run_id, event, slot)
        if event in DELETING_EVENTS and record_deleted_key(record):
            tasks.deleted[tasks.pair[slot]] = 1
        if new:
            if not self.rereadable:
                self.tasks.held[place] = record
            return
        report.superseded += 1
        was_revoked = event == "revoke" and outcome == "revoked"
        old_ts, old_place, old_code = tasks.ts[slot], tasks.place[slot], tasks.combo[slot]
        older = self.stamps.before(ts, old_ts) or (ts == old_ts and place < old_place)
        latest_revoked = tasks.combos[old_code][3] == "revoked" and event == "revoke"
        if not older:
            if was_revoked:
                self._drop_revoked(slot)
            elif latest_revoked:
                self.revoked[slot] = _pack(old_ts, old_place, old_code)
            else:
                self.tasks.held.pop(old_place, None)
            tasks.combo[slot], tasks.ts[slot], tasks.place[slot] = code, ts, place
            self._hold(record, place)
        elif was_revoked and not latest_revoked:
            packed = self.revoked.get(slot)
            best = None if packed is None else _unpack(packed)
            if best is None or self._rank_before(best[0], best[1], ts, place):
                if best is not None:
                    self.tasks.held.pop(best[1], None)
                self.revoked[slot] = _pack(ts, place, code)
                self._hold(record, place)

    def _rank_before(self, ts: int, place: int, other_ts: int, other_place: int) -> bool:
        return self.stamps.before(ts, other_ts) or (ts == other_ts and place < other_place)

    def _drop_revoked(self, slot: int) -> None:
        packed = self.revoked.pop(slot, None)
        if packed is not None:
            self.tasks.held.pop(_unpack(packed)[1], None)
        self.tasks.held.pop(self.tasks.place[slot], None)

    def _hold(self, record: dict[str, Any], place: int) -> None:
        """Keep the record itself only if its log cannot be read again (a pipe)."""
        if not self.rereadable:
            self.tasks.held[place] = record

    def _count(self, run_id: str, event: str, slot: int) -> None:
        """Count a run's task once however many lines it has (see ``task_lines``)."""
        run = self.run_codes.get(run_id)
        if run is None:
            run = self.run_codes[run_id] = len(self.run_codes)
        if run != self.last_run:
            if run in self.left:
                self.reopened.add(run_id)
            if self.last_run >= 0:
                self.left.add(self.last_run)
            self.last_run = run
        if self.counted[slot] != run + 1:
            self.counted[slot] = run + 1
            self.report.task_lines[(run_id, event)] += 1
        if not self.rereadable:
            self.piped.add((run, slot))

    def finish(self, paths: list[Path]) -> None:
        tasks = self.tasks
        # A key revoked once and found "absent" by a later run (without --resume) was
        # revoked: keep that, rather than a record that says the key never existed.
        for slot, packed in self.revoked.items():
            _ts, place, code = _unpack(packed)
            if tasks.combos[tasks.combo[slot]][3] == "absent":
                tasks.held.pop(tasks.place[slot], None)
                tasks.combo[slot], tasks.place[slot] = code, place
            else:
                tasks.held.pop(place, None)
        self.revoked.clear()
        tasks.ts = array("q")
        self.report._per_combo = Counter(tasks.combo)
        if self.reopened:
            self._recount(paths)

    def _recount(self, paths: list[Path]) -> None:
        """Count the tasks of the runs seen in more than one block exactly, again."""
        runs = {self.run_codes[run_id] for run_id in self.reopened}
        seen = {(run, slot) for run, slot in self.piped if run in runs}
        for path in paths:
            if not path.is_file():
                continue  # a pipe is not read twice: its lines are in ``piped``
            with path.open("rb") as handle:
                for _number, _offset, _line, record in iter_lines(handle):
                    if record is None or not well_formed(record):
                        continue
                    event = record["event"]
                    run = self.run_codes.get(str(record.get("run_id")), -1)
                    if event not in TASK_EVENTS or run not in runs:
                        continue
                    if record.get("phase") in (None, "result"):
                        seen.add((run, self.index.slot(_task_digest(record, event))))
        names = {code: run_id for run_id, code in self.run_codes.items()}
        task_lines = self.report.task_lines
        for run_event in [k for k in task_lines if k[0] in self.reopened]:
            del task_lines[run_event]
        for run, slot in seen:
            task_lines[(names[run], self.tasks.combos[self.tasks.combo[slot]][0])] += 1


def _pack(ts: int, place: int, code: int) -> int:
    """(ts, place, combo) as one int: tuples would linger in CPython's free lists."""
    return ((ts + _TS_BIAS) << 96) | (place << 32) | code


def _unpack(packed: int) -> tuple[int, int, int]:
    return (packed >> 96) - _TS_BIAS, (packed >> 32) & ((1 << 64) - 1), packed & 0xFFFFFFFF


def _task_digest(record: dict[str, Any], event: str) -> int:
    sid = str(record.get("sid") or "") if event == "disconnect" else ""
    parts = (str(record.get("app_id")), str(record.get("region")), str(record.get("key_id")))
    return _digest((event, *parts, sid))


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
