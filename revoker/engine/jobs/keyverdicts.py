"""The verdict per key of a ``revoke`` or ``rotate`` run: revoked, or not found.

Each pair's result is told to a :class:`KeyLedger` as it is recorded. A key is
*revoked* once a DELETE of it succeeded in some region; it is *not found* when
every region answered the API's "not found". Before a not-found key is
reported, the audit log is read for an earlier run that deleted it (a plain
re-run of yesterday's list is then still "revoked"); nothing else can tell a
key already gone from one that never named a real key.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from revoker.audit.evidence import deleted_keys, key_digest
from revoker.models import Outcome, Task, TaskResult
from revoker.results import KeyVerdicts, NotFoundKey

_DELETED = 1
_UNSETTLED = 2  # a failed or not attempted pair: the pass's own failures say so
_ABSENT = 4
_ROTATED = 8


def result_deleted(result: TaskResult) -> bool:
    """Whether a ``revoke`` or ``rotate`` result proves its DELETE answered 200."""
    if result.outcome in (Outcome.REVOKED, Outcome.ROTATED):
        return True
    step = result.audit_fields.get("delete")  # rotate: a key not stored, deleted anyway
    return isinstance(step, dict) and step.get("outcome") == str(Outcome.REVOKED)


class KeyLedger:
    """Per key (app ID, key ID): which of revoked / absent / unsettled its pairs were.

    Holds a few bits per distinct key, plus the details of the keys found nowhere
    so far (their app ID, key ID, hint and regions) for the summary.
    """

    def __init__(self, event: str, *, absent_ok: bool = False) -> None:
        self.event = event  # the pass whose results are judged: revoke, rotate or verify
        self.absent_ok = absent_ok
        self._state: dict[int, int] = {}
        self._nowhere: dict[int, NotFoundKey] = {}
        self._keys_per_app: Counter[str] = Counter()
        self._streams: dict[tuple[str, str], Counter[str]] = {}
        self.live_streams = 0

    def watch_streams(self, app_id: str, region: str, keys: Counter[str]) -> None:
        """Live streams of an (app ID, region) by the key their URL names, counted per
        key of this run as its pair is recorded."""
        self._streams[(app_id, region)] = keys

    def add(self, result: TaskResult) -> None:
        """One pair's result (of the ``event`` pass)."""
        task = result.task
        if result_deleted(result):
            bit = _DELETED | (_ROTATED if result.outcome is Outcome.ROTATED else 0)
        elif result.outcome is Outcome.ABSENT:
            bit = _ABSENT
        else:
            bit = _UNSETTLED
        self._mark(task, bit)
        streams = self._streams.get((task.app_id, task.region))
        if streams:
            self.live_streams += streams.pop(task.key, 0)

    def add_earlier(self, tasks: Iterable[Task]) -> None:
        """Pairs an earlier run finished (``--resume`` skipped them): revoked or absent
        then; the audit log, read in :meth:`settle`, says which."""
        for task in tasks:
            self._mark(task, _ABSENT)

    def _mark(self, task: Task, bit: int) -> None:
        kid = task.key_id
        digest = key_digest(task.app_id, kid)
        before = self._state.get(digest)
        if before is None:
            self._keys_per_app[task.app_id] += 1
            before = 0
        state = before | bit
        self._state[digest] = state
        if state & (_DELETED | _UNSETTLED):
            self._nowhere.pop(digest, None)
        elif bit == _ABSENT:
            found = self._nowhere.get(digest)
            if found is None:
                found = self._nowhere[digest] = NotFoundKey(task.app_id, kid, task.key_hint)
            found.regions.append(task.region)

    def settle(self, audit_log: Path, run_id: str) -> KeyVerdicts:
        """The verdicts, once every pair is recorded: keys found nowhere are looked up
        in the audit log, where an earlier run may have deleted them."""
        unfinished = 0
        if self._nowhere:  # else the log has nothing to say: not read (it may be large)
            evidence = deleted_keys(audit_log, set(self._nowhere), skip_run=run_id)
            for digest in evidence.deleted:
                self._state[digest] |= _DELETED
                del self._nowhere[digest]
            unfinished = evidence.unfinished_runs
        verdicts = KeyVerdicts(
            absent_ok=self.absent_ok,
            live_streams=self.live_streams,
            advisory=self.event == "verify",
        )
        verdicts.keys = len(self._state)
        for state in self._state.values():
            if state & _DELETED:
                verdicts.revoked += 1
                verdicts.rotated += bool(state & _ROTATED)
            elif state & _UNSETTLED:
                verdicts.unsettled += 1
        verdicts.not_found = len(self._nowhere)
        per_app: Counter[str] = Counter()
        for found in self._nowhere.values():
            per_app[found.app_id] += 1
            if len(verdicts.samples) < KeyVerdicts.MAX_SAMPLES:
                verdicts.samples.append(found)
        verdicts.apps_not_found = sorted(
            (app, n) for app, n in per_app.items() if n == self._keys_per_app[app]
        )
        if self._nowhere:
            verdicts.unfinished_runs = unfinished
        return verdicts
