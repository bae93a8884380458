"""The scout: keys of keyless (WHIP) live streams found ahead of the pass and moved to the front.

The scout's GETs are replaced by a fake that answers at once or when the test says
so: no clock, no HTTP; what the feed hands out, in which order, is the behaviour
under test.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

import revoker.audit.log
from revoker.credentials import Credentials
from revoker.engine.jobs import scout as scout_module
from revoker.engine.jobs.disconnect_records import Listing
from revoker.engine.jobs.keyverdicts import KeyLedger
from revoker.engine.jobs.scout import Scout, keyless_streams
from revoker.engine.matching import parse_push_url
from revoker.engine.run import execute, prepare, revoke_passes
from revoker.engine.sched.pool import Halt, RunContext, TaskFeed
from revoker.engine.sched.retry import Backoff, RetryPolicy
from revoker.errors import AuditWriteError
from revoker.models import Attempt, Outcome, Task, TaskResult
from revoker.results import HaltReason
from revoker.settings import ClientSettings, InputSettings, RunSettings
from tests.conftest import mock_transport

APP = "app1"
REGIONS = ("na", "eu")


def listing(*streams: dict[str, Any]) -> Listing:
    result = TaskResult(Task(APP, "na", ""), Outcome.PRESENT)
    return Listing(result, [(s, parse_push_url(s.get("url"))) for s in streams])


def whip(channel: str, uid: str) -> dict[str, Any]:
    return {"sid": f"S-{channel}", "channel": channel, "uid": uid, "url": "https://h/whip"}


def identity_of(key: str) -> dict[str, Any]:
    """Each key ``kN`` has channel ``chN`` and uid ``N`` in every region."""
    return {"streamKey": key, "channel": f"ch{key[1:]}", "uid": key[1:]}


def plan(keys: list[str], app: str = APP) -> list[Task]:
    return [Task(app, region, key) for key in keys for region in REGIONS]


class FakeGets:
    """Stands in for ``query_task``: records each GET and answers at once, or when released."""

    def __init__(self, *, hold: bool = False, failing: frozenset[str] = frozenset()) -> None:
        self.sent: list[Task] = []
        self.hold = hold
        self.failing = failing
        self.release = asyncio.Event()

    async def __call__(self, ctx: Any, task: Task) -> TaskResult:
        self.sent.append(task)
        if self.hold:
            await self.release.wait()
        attempts = [Attempt(f"req-{len(self.sent)}", "h", 200)]
        if task.key in self.failing:
            return TaskResult(task, Outcome.FAILED, attempts, message="HTTP 503")
        return TaskResult(task, Outcome.PRESENT, attempts, data=identity_of(task.key))


class Lines:
    """Stands in for the audit log: the non-task lines written (none once ``full``)."""

    run_id = "run-1"

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.full = False

    def event(self, event: str, **fields: Any) -> None:
        if self.full:
            raise AuditWriteError("disk full")
        self.events.append({"event": event, **fields})


class Counted:
    """An input that counts how many tasks were read from it."""

    def __init__(self, tasks: list[Task]) -> None:
        self._tasks = iter(tasks)
        self.read = 0

    def __iter__(self) -> Iterator[Task]:
        return self

    def __next__(self) -> Task:
        task = next(self._tasks)
        self.read += 1
        return task


def make_scout(
    monkeypatch: pytest.MonkeyPatch,
    listings: dict[tuple[str, str], Listing],
    *,
    gets: FakeGets | None = None,
    streamed: frozenset[tuple[str, str]] = frozenset(),
    lookahead: int = 64,
) -> tuple[Scout, FakeGets, Lines]:
    gets = gets or FakeGets()
    monkeypatch.setattr(scout_module, "query_task", gets)
    lines = Lines()
    # Not a client nor a retry policy: the scout's GETs are faked; the halt and the
    # audit writes are RunContext's own.
    ctx: Any = RunContext(None, None, {}, Halt(), audit=lines, listings=listings)  # type: ignore[arg-type]
    scout = Scout(ctx, streamed, concurrency=2, lookahead=lookahead)
    return scout, gets, lines


async def settle() -> None:
    """Let every ready coroutine run (the fake GETs answer without a clock)."""
    for _ in range(50):
        await asyncio.sleep(0)


async def drain(feed: TaskFeed) -> list[Task]:
    handed = []
    while (task := await feed.get()) is not None:
        handed.append(task)
    return handed


def test_only_streams_whose_url_names_no_key_are_looked_for() -> None:
    listings = {
        (APP, "na"): listing(
            whip("ch1", "1"),
            {"sid": "S2", "channel": "ch2", "uid": "2", "url": "rtmp://h/live/k2"},
            {"sid": "S3", "channel": "ch3", "url": "https://h/whip"},  # no uid: no match
        ),
        (APP, "eu"): listing(),
    }
    wanted, regions = keyless_streams(listings)
    assert wanted == {APP: {("ch1", "1")}}
    assert regions == {APP: {"na"}}


def test_a_whip_key_last_in_the_input_is_handed_out_before_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def go() -> None:
        keys = [f"k{i}" for i in range(10)]
        tasks = plan(keys)
        scout, gets, _ = make_scout(monkeypatch, {(APP, "eu"): listing(whip("ch9", "9"))})
        feed = scout.feed(scout.source(iter(tasks)))
        running = asyncio.ensure_future(scout.run())
        await settle()
        handed = await drain(feed)
        scout.stop()
        await running
        assert handed[:2] == [tasks[-2], tasks[-1]]  # k9 in na and eu
        assert sorted(handed, key=tasks.index) == tasks  # every pair once, none twice
        assert all(a is b for a, b in zip(sorted(handed, key=tasks.index), tasks, strict=True))
        assert scout.moved_keys == 1
        # One GET per key, in the region with the keyless stream; then the scout stopped.
        assert gets.sent == [t for t in tasks if t.region == "eu"]

    asyncio.run(go())


def test_the_scouts_answer_is_the_pairs_lookup_and_is_taken_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def go() -> None:
        tasks = plan(["k1", "k2"])
        scout, _, _ = make_scout(monkeypatch, {(APP, "na"): listing(whip("ch2", "2"))})
        scout.source(iter(tasks))
        running = asyncio.ensure_future(scout.run())
        await settle()
        answer = scout.take(tasks[2])  # k2 in na
        assert answer is not None
        lookup = await answer
        assert lookup is not None
        assert lookup.data == identity_of("k2")
        assert scout.take(tasks[2]) is None  # the pass GETs nothing twice
        assert scout.take(tasks[3]) is None  # not scouted in eu: the pass GETs it there
        scout.stop()
        await running

    asyncio.run(go())


def test_a_failed_scouting_get_is_the_pairs_lookup_as_it_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def go() -> None:
        tasks = plan(["k1", "k2"])
        gets = FakeGets(failing=frozenset({"k1"}))
        scout, _, _ = make_scout(monkeypatch, {(APP, "na"): listing(whip("ch2", "2"))}, gets=gets)
        scout.source(iter(tasks))
        running = asyncio.ensure_future(scout.run())
        await settle()
        answer = scout.take(tasks[0])
        assert answer is not None
        lookup = await answer
        assert lookup is not None
        assert lookup.outcome is Outcome.FAILED  # recorded with the pair, not sent again
        scout.stop()
        await running

    asyncio.run(go())


def test_pairs_the_feed_handed_out_already_are_neither_scouted_nor_handed_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def go() -> None:
        tasks = plan(["k0", "k1", "k2", "k3"])
        scout, gets, _ = make_scout(monkeypatch, {(APP, "na"): listing(whip("ch1", "1"))})
        feed = scout.feed(scout.source(iter(tasks)))
        # The pass takes k0 in both regions and k1 in na before the scout gets going.
        early = [await feed.get() for _ in range(3)]
        running = asyncio.ensure_future(scout.run())
        await settle()
        rest = await drain(feed)
        scout.stop()
        await running
        assert early + rest == tasks  # k1's eu pair once, in its place
        assert gets.sent == [tasks[4], tasks[6]]  # k2 and k3 in na only

    asyncio.run(go())


def test_a_key_moved_while_the_pass_is_on_it_sends_only_its_regions_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def go() -> None:
        tasks = plan(["k0", "k1"])
        scout, _, _ = make_scout(monkeypatch, {(APP, "eu"): listing(whip("ch0", "0"))})
        feed = scout.feed(scout.source(iter(tasks)))
        first = await feed.get()  # k0 in na, before the scout found k0
        running = asyncio.ensure_future(scout.run())
        await settle()
        rest = await drain(feed)
        scout.stop()
        await running
        assert [first, *rest] == tasks
        assert scout.moved_keys == 1

    asyncio.run(go())


def test_keys_whose_url_streams_put_them_first_already_are_not_scouted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def go() -> None:
        tasks = plan(["k1", "k2"])
        scout, gets, _ = make_scout(
            monkeypatch, {(APP, "na"): listing(whip("ch9", "9"))}, streamed=frozenset({(APP, "k1")})
        )
        scout.source(iter(tasks))
        running = asyncio.ensure_future(scout.run())
        await settle()
        scout.stop()
        await running
        assert gets.sent == [tasks[2]]

    asyncio.run(go())


def test_the_scout_reads_at_most_its_lookahead_ahead_of_the_feed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def go() -> None:
        source = Counted(plan([f"k{i}" for i in range(10)]))
        scout, _, _ = make_scout(
            monkeypatch, {(APP, "na"): listing(whip("ch99", "99"))}, lookahead=4
        )
        feed = scout.feed(scout.source(source))
        running = asyncio.ensure_future(scout.run())
        await settle()
        assert source.read == 4
        for _ in range(2):
            await feed.get()
        await settle()
        assert source.read == 6
        scout.stop()
        await running

    asyncio.run(go())


def test_an_answer_whose_pair_never_ran_gets_a_lookup_line_of_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def go() -> None:
        tasks = plan(["k1", "k2"])
        scout, _, lines = make_scout(monkeypatch, {(APP, "na"): listing(whip("ch9", "9"))})
        scout.source(iter(tasks))
        running = asyncio.ensure_future(scout.run())
        await settle()
        assert scout.take(tasks[0]) is not None  # k1's pair ran and took its answer
        scout.stop()  # the run halted before k2's pair
        await running
        (line,) = lines.events
        assert line["event"] == "lookup"
        assert (line["region"], line["key_id"]) == ("na", tasks[2].key_id)
        assert line["request_id"] == "req-2"
        assert line["outcome"] == "present"

    asyncio.run(go())


def test_stopping_waits_for_the_gets_under_way_and_records_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def go() -> None:
        tasks = plan(["k1"])
        gets = FakeGets(hold=True)
        scout, _, lines = make_scout(
            monkeypatch, {(APP, "na"): listing(whip("ch9", "9"))}, gets=gets
        )
        scout.source(iter(tasks))
        running = asyncio.ensure_future(scout.run())
        await settle()
        scout.stop()
        await settle()
        assert not running.done()  # its GET is still out
        gets.release.set()
        await running
        assert [line["request_id"] for line in lines.events] == ["req-1"]

    asyncio.run(go())


def test_every_lookup_line_the_audit_log_refuses_is_kept_with_its_line_and_halts_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def go() -> None:
        tasks = plan(["k1", "k2", "k3"])
        scout, _, lines = make_scout(monkeypatch, {(APP, "na"): listing(whip("ch9", "9"))})
        scout.source(iter(tasks))
        running = asyncio.ensure_future(scout.run())
        await settle()
        lines.full = True  # the disk filled up; the run halted before any pair ran
        scout.stop()
        await running
        assert lines.events == []
        assert scout.ctx.halt.reason == HaltReason.AUDIT_WRITE_FAILED
        kept = scout.unrecorded()
        assert [result.task for result, _ in kept] == [tasks[0], tasks[2], tasks[4]]
        assert [record["request_id"] for _, record in kept] == ["req-1", "req-2", "req-3"]
        for (result, record), task in zip(kept, (tasks[0], tasks[2], tasks[4]), strict=True):
            assert (record["event"], record["run_id"]) == ("lookup", "run-1")
            assert (record["key_id"], record["key_hint"]) == (task.key_id, task.key_hint)
            assert record["outcome"] == str(result.outcome) == "present"
            assert task.key not in json.dumps(record)

    asyncio.run(go())


class _LogFillsUp:
    """Stands in for ``os`` inside revoker.audit.log: once a ``revoke`` line is written,
    every write to the audit log fails with ENOSPC (other files, such as the fallback
    file, are written as usual)."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.full = False

    def write(self, fd: int, data: bytes | memoryview) -> int:
        if self.full or b'"event":"revoke"' in bytes(data):
            held, log = os.fstat(fd), os.stat(self.log)
            if (held.st_dev, held.st_ino) == (log.st_dev, log.st_ino):
                self.full = True
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return os.write(fd, data)

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)


def test_lookup_lines_the_full_audit_log_refuses_are_saved_to_the_fallback_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = "app1"
    keys = [f"leakedKey-{i}-AAAA-1111" for i in range(4)]
    audit = tmp_path / "audit.jsonl"
    monkeypatch.setattr(revoker.audit.log, "os", _LogFillsUp(audit))
    # The keyless stream is no key's: the scout GETs every key the two workers have not
    # taken yet. The DELETEs answer once every key has been looked up, so the first
    # DELETE's line is refused (the run halts) with the scout's answers for the last
    # two keys still waiting for their pairs.
    whip_stream = {"sid": "W1", "channel": "room", "uid": "99", "url": "https://h/whip"}
    looked_up: dict[str, str] = {}
    all_looked_up = asyncio.Event()

    def lookup(request: httpx.Request) -> httpx.Response:
        key = request.url.path.rsplit("/", 1)[-1]
        looked_up[key] = request.headers["X-Request-ID"]
        if len(looked_up) == len(keys):
            all_looked_up.set()
        return httpx.Response(200, json={"status": "success", "data": {"uid": "1"}})

    async def delete(request: httpx.Request) -> httpx.Response:
        await all_looked_up.wait()
        return httpx.Response(200, json={"status": "success"})

    settings = RunSettings(
        inputs=InputSettings(keys=tuple(keys), app_id=app, regions=("na",)),
        client=ClientSettings(base_url="https://agora.test", concurrency=2),
        max_rps=0,
        audit_log=audit,
        disconnect=True,
    )
    plan = prepare(settings, resume_events=("revoke",))
    with respx.mock(base_url="https://agora.test", assert_all_called=False) as api:
        api.get(url__regex=r"/streamkeys/[^/]+$").mock(side_effect=lookup)
        api.delete(url__regex=r"/streamkeys/[^/]+$").mock(side_effect=delete)
        api.get(url__regex=r"/online-streams$").mock(
            return_value=httpx.Response(200, json={"status": "success", "data": [whip_stream]})
        )
        report = execute(
            "revoke",
            settings,
            plan,
            Credentials("cid", "secret"),
            revoke_passes(settings, plan),
            transport=mock_transport(),
            install_signal_handlers=False,
            retry=RetryPolicy(1, Backoff(0.001, 0.01)),
            ledger=KeyLedger("revoke"),  # the listings before the first DELETE: the scout
        )
    assert report.halt_reason == HaltReason.AUDIT_WRITE_FAILED
    assert report.unrecorded_file is not None
    text = report.unrecorded_file.read_text()
    saved = [json.loads(line) for line in text.splitlines()]
    scouted = {key: looked_up[key] for key in keys[2:]}  # the pairs that never ran
    lookups = [r for r in saved if r["event"] == "lookup"]
    assert sorted(r["request_id"] for r in lookups) == sorted(scouted.values())
    for line in lookups:
        assert line["run_id"] == report.run_id
        assert line["outcome"] == "present"
        assert line["purpose"].startswith("looked up ahead of its DELETE")
    assert not any(key in text for key in keys)  # masked like every fallback line
    printed = {rid for r in report.unrecorded for rid in r.request_ids}
    assert set(scouted.values()) <= printed  # and in the summary's unrecorded list
