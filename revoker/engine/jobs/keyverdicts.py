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
from typing import Any

from revoker.audit.evidence import deleted_keys, key_digest
from revoker.digestflags import DigestFlags
from revoker.models import REGIONS, Outcome, Task, TaskResult
from revoker.results import KeyVerdicts, NotFoundKey

_DELETED = 1
_UNSETTLED = 2  # a failed or not attempted pair: the pass's own failures say so
_ABSENT = 4
_ROTATED = 8
# The regions that answered "not found" for a key, for the summary's samples.
_REGION_BIT = {region: 16 << i for i, region in enumerate(REGIONS)}
# Keys found nowhere (so far) whose key ID and hint are held for the samples; the
# samples of the others are read back from the run's own lines in the audit log.
DETAILS_HELD = 2 * KeyVerdicts.MAX_SAMPLES


def result_deleted(result: TaskResult) -> bool:
    """Whether a ``revoke`` or ``rotate`` result proves its DELETE answered 200."""
    if result.outcome in (Outcome.REVOKED, Outcome.ROTATED):
        return True
    step = result.audit_fields.get("delete")  # rotate: a key not stored, deleted anyway
    return isinstance(step, dict) and step.get("outcome") == str(Outcome.REVOKED)


def _nowhere(state: int) -> bool:
    return bool(state & _ABSENT) and not state & (_DELETED | _UNSETTLED)


class _FoundNowhere:
    """The digests of the ledger's keys found nowhere, as a container."""

    def __init__(self, state: DigestFlags) -> None:
        self._state = state

    def __contains__(self, digest: object) -> bool:
        return isinstance(digest, int) and _nowhere(self._state.get(digest))


class KeyLedger:
    """Per key (app ID, key ID): which of revoked / absent / unsettled its pairs were.

    Holds a few bytes per distinct key (:class:`~revoker.digestflags.DigestFlags`),
    and the key ID and hint of the first keys found nowhere, for the summary.
    """

    def __init__(self, event: str, *, absent_ok: bool = False) -> None:
        self.event = event  # the pass whose results are judged: revoke, rotate or verify
        self.absent_ok = absent_ok
        self._state = DigestFlags()
        self._details: dict[int, NotFoundKey] = {}
        self._keys_per_app: Counter[str] = Counter()
        self._nowhere_per_app: Counter[str] = Counter()
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
        if bit == _ABSENT:
            bit |= _REGION_BIT.get(task.region, 0)
        before = self._state.update(digest, bit)
        if before is None:
            self._keys_per_app[task.app_id] += 1
            before = 0
        was, now = _nowhere(before), _nowhere(before | bit)
        if was and not now:
            self._nowhere_per_app[task.app_id] -= 1
            self._details.pop(digest, None)
        elif now and not was:
            self._nowhere_per_app[task.app_id] += 1
            if len(self._details) < DETAILS_HELD:
                self._details[digest] = NotFoundKey(task.app_id, kid, task.key_hint)

    def settle(self, audit_log: Path, run_id: str) -> KeyVerdicts:
        """The verdicts, once every pair is recorded: keys found nowhere are looked up
        in the audit log, where an earlier run may have deleted them."""
        unfinished = 0
        nowhere = sum(self._nowhere_per_app.values())
        read_back: dict[int, NotFoundKey] = {}
        if nowhere:  # else the log has nothing to say: not read (it may be large)
            found_nowhere = _FoundNowhere(self._state)
            own_line = None
            if len(self._details) < min(nowhere, KeyVerdicts.MAX_SAMPLES):

                def own_line(record: dict[str, Any]) -> None:
                    self._read_back(record, found_nowhere, read_back)

            evidence = deleted_keys(audit_log, found_nowhere, skip_run=run_id, own_line=own_line)
            for digest, app_id in evidence.deleted.items():
                self._state.update(digest, _DELETED)
                self._nowhere_per_app[app_id] -= 1
                self._details.pop(digest, None)
                read_back.pop(digest, None)
            unfinished = evidence.unfinished_runs
            nowhere = sum(self._nowhere_per_app.values())
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
        verdicts.not_found = nowhere
        for digest, found in [*self._details.items(), *read_back.items()]:
            if len(verdicts.samples) >= KeyVerdicts.MAX_SAMPLES:
                break
            state = self._state.get(digest)
            found.regions = [region for region, bit in _REGION_BIT.items() if state & bit]
            verdicts.samples.append(found)
        per_app = self._nowhere_per_app
        verdicts.apps_not_found = sorted(
            (app, n) for app, n in per_app.items() if n and n == self._keys_per_app[app]
        )
        if nowhere:
            verdicts.unfinished_runs = unfinished
        return verdicts

    def _read_back(
        self, record: dict[str, Any], nowhere: _FoundNowhere, into: dict[int, NotFoundKey]
    ) -> None:
        """Keep the key ID and hint of a key found nowhere from one of this run's lines."""
        if len(into) >= KeyVerdicts.MAX_SAMPLES or record.get("outcome") != str(Outcome.ABSENT):
            return
        if record.get("event") != self.event:
            return
        app_id, kid = str(record.get("app_id")), str(record.get("key_id"))
        digest = key_digest(app_id, kid)
        if digest in self._details or digest in into or digest not in nowhere:
            return
        into[digest] = NotFoundKey(app_id, kid, str(record.get("key_hint")))
