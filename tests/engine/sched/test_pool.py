"""Retries, Retry-After, the circuit breaker and outcomes, through service.execute + respx."""

from __future__ import annotations

import json
from email.utils import formatdate
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from revoker.credentials import Credentials
from revoker.engine.run import execute, prepare, revoke_passes
from revoker.engine.sched.pacing import Pacer
from revoker.engine.sched.pool import Halt
from revoker.engine.sched.retry import Backoff, RetryPolicy
from revoker.results import HaltReason, RunReport
from revoker.settings import ClientSettings, InputSettings, RetrySettings, RunSettings
from tests.conftest import NO_ECHO, mock_transport

BASE = "https://agora.test"
CREDS = Credentials("cid", "sec")


def run(
    tmp_path: Path,
    keys: list[str],
    *,
    regions: tuple[str, ...] = ("na",),
    concurrency: int = 4,
    max_attempts: int = 6,
    verify: bool = False,
    max_rps: float = 0,
) -> RunReport:
    settings = RunSettings(
        inputs=InputSettings(keys=tuple(keys), app_id="app", regions=regions),
        client=ClientSettings(base_url=BASE, concurrency=concurrency),
        retry=RetrySettings(max_attempts=max_attempts),
        max_rps=max_rps,
        audit_log=tmp_path / "audit.jsonl",
        verify=verify,
        verify_delay=0,
    )
    plan = prepare(settings)
    return execute(
        "revoke",
        settings,
        plan,
        CREDS,
        revoke_passes(settings, plan),
        transport=mock_transport(),
        install_signal_handlers=False,
        retry=RetryPolicy(max_attempts, Backoff(0.01, 0.05)),
    )


def records(tmp_path: Path, event: str = "revoke") -> list[dict[str, Any]]:
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == event]


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record every backoff the executor asks for, without waiting."""
    asked: list[float] = []

    async def fake_sleep(self: Halt, seconds: float) -> None:
        asked.append(seconds)

    monkeypatch.setattr(Halt, "sleep", fake_sleep)
    return asked


def echo(status: int, **headers: str) -> Any:
    def respond(request: httpx.Request) -> httpx.Response:
        body = (
            {"status": "success"} if status == 200 else {"status": "error", "message": f"m{status}"}
        )
        return httpx.Response(
            status,
            json=body,
            headers={"X-Request-ID": request.headers.get("X-Request-ID", "-"), **headers},
        )

    return respond


@pytest.mark.parametrize(
    ("status", "outcome", "exit_code"),
    [(200, "revoked", 0), (404, "absent", 0), (403, "failed", 1), (400, "failed", 1)],
)
def test_each_status_maps_to_its_outcome(
    tmp_path: Path, status: int, outcome: str, exit_code: int
) -> None:
    with respx.mock(base_url=BASE) as api:
        route = api.delete(url__regex=".*").mock(side_effect=echo(status))
        report = run(tmp_path, ["key-one"])
    assert report.exit_code == exit_code
    (record,) = records(tmp_path)
    assert record["outcome"] == outcome
    assert record["http_status"] == status
    assert route.call_count == 1, "4xx other than 409/429 is never retried"


NGINX_404 = "<html><head><title>404 Not Found</title></head><body>nginx</body></html>"


def _echoed(request: httpx.Request) -> dict[str, str]:
    return {"X-Request-ID": request.headers["X-Request-ID"]}


@pytest.mark.parametrize(
    ("status", "answer"),
    [
        pytest.param(
            200,
            lambda r: httpx.Response(200, text="<html>ok</html>", headers=NO_ECHO),
            id="200-html",
        ),
        pytest.param(
            200,
            lambda r: httpx.Response(200, text="<html>ok</html>", headers=_echoed(r)),
            id="200-html-echoed",
        ),
        pytest.param(
            200,
            lambda r: httpx.Response(200, json={"status": "success"}, headers=NO_ECHO),
            id="200-no-request-id",
        ),
        pytest.param(
            200, lambda r: httpx.Response(200, json={}, headers=_echoed(r)), id="200-no-status"
        ),
        pytest.param(200, lambda r: httpx.Response(200, headers=_echoed(r)), id="200-empty"),
        pytest.param(
            200,
            lambda r: httpx.Response(
                200, json={"status": "success"}, headers={"X-Request-ID": "someone-else"}
            ),
            id="200-other-id",
        ),
        pytest.param(
            404,
            lambda r: httpx.Response(
                404, text=NGINX_404, headers={"Content-Type": "text/html", **NO_ECHO}
            ),
            id="404-html",
        ),
        pytest.param(
            404,
            lambda r: httpx.Response(404, text=NGINX_404, headers=_echoed(r)),
            id="404-html-echoed",
        ),
        pytest.param(
            404,
            lambda r: httpx.Response(
                404, json={"status": "error", "message": "Not found"}, headers=NO_ECHO
            ),
            id="404-no-request-id",
        ),
        pytest.param(
            404,
            lambda r: httpx.Response(404, json={"message": "no route"}, headers=_echoed(r)),
            id="404-other-json",
        ),
        pytest.param(
            404,
            lambda r: httpx.Response(404, json=["status", "error"], headers=_echoed(r)),
            id="404-json-list",
        ),
        pytest.param(404, lambda r: httpx.Response(404, headers=_echoed(r)), id="404-empty"),
        pytest.param(
            404,
            lambda r: httpx.Response(
                404, json={"status": "error"}, headers={"X-Request-ID": "someone-else"}
            ),
            id="404-other-id",
        ),
    ],
)
def test_a_200_or_404_that_is_not_the_apis_answer_is_failed_never_done(
    tmp_path: Path, status: int, answer: Any
) -> None:
    with respx.mock(base_url=BASE) as api:
        api.delete(url__regex=".*").mock(side_effect=answer)
        api.get(url__regex=".*").mock(side_effect=answer)
        report = run(tmp_path, ["key-one"], verify=True)
    assert report.exit_code == 1
    for event in ("revoke", "verify"):
        (record,) = records(tmp_path, event)
        assert (record["outcome"], record["http_status"]) == ("failed", status)
        assert record["message"] == "not an answer of the Media Gateway API (check --base-url)"


def test_the_apis_own_404_with_request_id_echoed_is_absent(tmp_path: Path) -> None:
    with respx.mock(base_url=BASE) as api:
        api.delete(url__regex=".*").mock(side_effect=echo(404))
        api.get(url__regex=".*").mock(side_effect=echo(404))
        report = run(tmp_path, ["key-one"], verify=True)
    assert report.exit_code == 0
    assert [r["outcome"] for r in records(tmp_path) + records(tmp_path, "verify")] == [
        "absent",
        "absent",
    ]


def test_retry_sequence_ends_revoked_with_every_request_id(
    tmp_path: Path, sleeps: list[float]
) -> None:
    answers: list[Any] = [
        echo(503),
        httpx.RemoteProtocolError("connection reset"),
        echo(429, **{"Retry-After": "2"}),
        echo(200),
    ]

    def respond(request: httpx.Request) -> httpx.Response:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        response: httpx.Response = answer(request)
        return response

    with respx.mock(base_url=BASE) as api:
        route = api.delete(url__regex=".*").mock(side_effect=respond)
        report = run(tmp_path, ["key-one"])
    assert report.exit_code == 0
    (record,) = records(tmp_path)
    sent = [c.request.headers["X-Request-ID"] for c in route.calls]
    assert len(set(sent)) == 4
    assert record["outcome"] == "revoked"
    assert [a["request_id"] for a in record["attempts"]] == sent
    assert [a.get("status") for a in record["attempts"]] == [503, None, 429, 200]
    assert record["attempts"][1]["error"] == "remote_protocol_error"
    assert record["request_id"] == sent[-1]
    assert record["server_request_id"] == sent[-1]
    assert sleeps[2] == 2.0, "Retry-After in seconds is honoured"


def test_a_retry_waits_its_retry_after_and_then_books_a_paced_slot(
    tmp_path: Path, sleeps: list[float]
) -> None:
    """A 429 with Retry-After: 2 at 1 request/s: the retry waits the 2 s, then its
    turn in the pace like any request, never going ahead of it."""
    answers = [echo(429, **{"Retry-After": "2"}), echo(200)]
    with respx.mock(base_url=BASE) as api:
        api.delete(url__regex=".*").mock(side_effect=lambda request: answers.pop(0)(request))
        report = run(tmp_path, ["key-one"], max_rps=1)
    assert report.exit_code == 0
    assert [r["outcome"] for r in records(tmp_path)] == ["revoked"]
    first_slot, retry_after, retry_slot = sleeps
    assert first_slot == 0.0
    assert retry_after == 2.0
    # The next slot of the pace, less the real time the test took to get there
    # (sleeps are recorded, not slept): never 0, never more than one slot.
    assert 0.5 < retry_slot <= 1 / Pacer.MIN_TARGET, "a slot of the pace"


def test_retry_after_http_date_is_honoured_and_capped(tmp_path: Path, sleeps: list[float]) -> None:
    import time

    later = formatdate(time.time() + 30, usegmt=True)
    much_later = formatdate(time.time() + 3600, usegmt=True)
    with respx.mock(base_url=BASE) as api:
        api.delete(url__regex=".*").mock(
            side_effect=[
                echo(429, **{"Retry-After": later})(httpx.Request("DELETE", BASE)),
                echo(503, **{"Retry-After": much_later})(httpx.Request("DELETE", BASE)),
                httpx.Response(200, json={"status": "success"}),
            ]
        )
        report = run(tmp_path, ["key-one"])
    assert report.exit_code == 0
    assert 28 <= sleeps[0] <= 30
    assert sleeps[1] == 60.0, "Retry-After is capped at 60 s"


@pytest.fixture
def max_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    """Full jitter draws uniform(0, bound): make it draw the bound, to see the bounds."""
    import tenacity.wait

    monkeypatch.setattr(tenacity.wait.random, "uniform", lambda low, high: high)


@pytest.mark.usefixtures("max_jitter")
def test_backoff_without_retry_after_is_bounded_full_jitter(
    tmp_path: Path, sleeps: list[float]
) -> None:
    with respx.mock(base_url=BASE) as api:
        api.delete(url__regex=".*").mock(side_effect=echo(500))
        report = run(tmp_path, ["key-one"], max_attempts=5)
    assert report.exit_code == 1
    (record,) = records(tmp_path)
    assert record["outcome"] == "failed"
    assert len(record["attempts"]) == 5
    assert "after 5 attempts" in record["message"]
    assert sleeps == pytest.approx([0.01, 0.02, 0.04, 0.05]), "base x 2^n, capped"


@pytest.mark.parametrize("status", [409, 502, 504])
def test_transient_statuses_are_retried(tmp_path: Path, sleeps: list[float], status: int) -> None:
    with respx.mock(base_url=BASE) as api:
        api.delete(url__regex=".*").mock(
            side_effect=[
                echo(status)(httpx.Request("DELETE", BASE)),
                httpx.Response(200, json={"status": "success"}),
            ]
        )
        report = run(tmp_path, ["key-one"])
    assert report.exit_code == 0
    assert [a["status"] for a in records(tmp_path)[0]["attempts"]] == [status, 200]


def test_401_opens_the_circuit_breaker(tmp_path: Path) -> None:
    keys = [f"key-{i:05d}" for i in range(200)]
    with respx.mock(base_url=BASE) as api:
        route = api.delete(url__regex=".*").respond(
            401, json={"status": "error", "message": "Invalid authentication credentials."}
        )
        report = run(tmp_path, keys, concurrency=4)
    assert report.exit_code == 3
    assert route.call_count <= 4, "no request starts after the first 401"
    lines = records(tmp_path)
    [not_started] = records(tmp_path, "not_started")
    assert not_started["for_event"] == "revoke"
    assert not_started["message"] == "auth_rejected"
    assert len(lines) + not_started["tasks"] == 200, "every task is accounted for"
    assert sum(not_started["per_region"].values()) == not_started["tasks"]
    outcomes = [r["outcome"] for r in lines]
    assert set(outcomes) <= {"failed", "not_attempted"}
    assert outcomes.count("not_attempted") + not_started["tasks"] >= 196
    finished = records(tmp_path, "run_finished")[0]
    assert finished["exit_code"] == 3
    assert finished["halt_reason"] == "auth_rejected"


def test_verify_after_revoke_reports_present_keys(tmp_path: Path) -> None:
    with respx.mock(base_url=BASE) as api:
        api.delete(url__regex=".*").respond(200, json={"status": "success"})
        api.get(url__regex=".*").respond(
            200,
            json={
                "status": "success",
                "data": {
                    "streamKey": "key-one",
                    "channel": "ch",
                    "uid": "1",
                    "expiresAfter": 0,
                    "createdAt": "1686820170",
                },
            },
        )
        report = run(tmp_path, ["key-one"], verify=True)
    assert report.exit_code == 1
    (line,) = records(tmp_path, "verify")
    assert line["outcome"] == "present"
    assert line["channel"] == "ch"
    assert "streamKey" not in json.dumps(line)
    assert "key-one" not in json.dumps(line)


def test_audit_lines_never_hold_the_plain_key(tmp_path: Path) -> None:
    with respx.mock(base_url=BASE) as api:
        api.delete(url__regex=".*").respond(200, json={"status": "success"})
        run(tmp_path, ["very-secret-stream-key-123"])
    text = (tmp_path / "audit.jsonl").read_text()
    assert "very-secret-stream-key-123" not in text
    record = records(tmp_path)[0]
    assert record["key_hint"] == "very...123"
    assert record["key_id"].startswith("sha256:")
    assert len(record["key_id"]) == 39


@pytest.mark.usefixtures("max_jitter")
def test_both_hosts_unreachable_switch_at_once_then_back_off(
    tmp_path: Path, sleeps: list[float]
) -> None:
    settings = RunSettings(
        inputs=InputSettings(keys=("key-one",), app_id="app", regions=("na",)),
        client=ClientSettings(base_url=BASE, fallback_url="https://fallback.test"),
        retry=RetrySettings(max_attempts=5, backoff_base=1.0, backoff_max=1.0),
        max_rps=0,
        audit_log=tmp_path / "audit.jsonl",
    )
    with respx.mock() as api:
        api.delete(url__regex=".*").mock(side_effect=httpx.ConnectError("refused"))
        plan = prepare(settings)
        report = execute(
            "revoke",
            settings,
            plan,
            CREDS,
            revoke_passes(settings, plan),
            transport=mock_transport(),
            install_signal_handlers=False,
        )
    assert report.exit_code == 1
    hosts = [a["host"] for a in records(tmp_path)[0]["attempts"]]
    assert hosts == ["agora.test", "fallback.test", "agora.test", "fallback.test", "agora.test"]
    assert sleeps == [0.0, 1.0, 0.0, 1.0], "the other host at once, then a backoff"


def test_a_server_message_echoing_the_key_is_recorded_without_it(tmp_path: Path) -> None:
    key = "leaked/key+with-odd-chars"
    with respx.mock(base_url=BASE) as api:
        api.delete(url__regex=".*").mock(
            side_effect=lambda request: httpx.Response(
                400, json={"message": f"bad key {key} at {request.url.raw_path.decode()}"}
            )
        )
        run(tmp_path, [key])
    text = (tmp_path / "audit.jsonl").read_text()
    assert key not in text
    assert "leaked%2Fkey%2Bwith-odd-chars" not in text
    assert records(tmp_path)[0]["message"].startswith("bad key *** at ")


def test_a_follow_up_line_that_cannot_be_written_is_listed_unrecorded_alone() -> None:
    import asyncio

    from revoker.engine.sched.pacing import RateLimits
    from revoker.engine.sched.pool import RunContext, run_tasks
    from revoker.errors import AuditWriteError
    from revoker.models import Attempt, FollowUp, Outcome, Task, TaskResult

    written: list[str] = []

    class FullAfterOneLine:
        run_id = "run-1"

        def task(self, event: str, result: TaskResult, **fields: Any) -> None:
            if written:
                raise AuditWriteError("disk full")
            written.append(event)

    task = Task("app", "na", "key-one-123456")
    query = TaskResult(task, Outcome.PRESENT, [Attempt("req-GET", "h", status=200)])
    delete = TaskResult(task, Outcome.REVOKED, [Attempt("req-DELETE", "h", status=200)])
    query.follow_ups.append(FollowUp("revoke", delete, {}))

    async def runner(_: Task) -> TaskResult:
        return query

    async def go() -> Any:
        ctx = RunContext(None, RetryPolicy(), {"GET": RateLimits(0)}, Halt())  # type: ignore[arg-type]
        return await run_tasks(
            iter([task]),
            runner,
            ctx=ctx,
            audit=FullAfterOneLine(),  # type: ignore[arg-type]
            event="query",
            concurrency=1,
        )

    totals = asyncio.run(go())
    assert written == ["query"]
    assert totals.counts == {"present": 1}, "the written line is counted"
    assert [r.attempts[0].request_id for r in totals.unrecorded] == ["req-DELETE"]


def test_429s_are_counted_per_pass_even_without_a_rate_limit(
    tmp_path: Path, sleeps: list[float]
) -> None:
    with respx.mock(base_url=BASE) as api:
        api.delete(url__regex=".*").mock(
            side_effect=[
                echo(429)(httpx.Request("DELETE", BASE)),
                httpx.Response(200, json={"status": "success"}),
            ]
        )
        api.get(url__regex=".*").mock(side_effect=echo(404))
        report = run(tmp_path, ["key-one"], verify=True)
    assert report.exit_code == 0
    assert [(p.event, p.extra["throttled_429"]) for p in report.passes] == [
        ("revoke", 1),
        ("verify", 0),
    ]


def test_a_halted_pass_neither_counts_nor_records_the_pairs_an_earlier_run_finished() -> None:
    """`revoke --disconnect --resume` yields the pairs done before (their streams are
    cut); when the run halts they must not become `not_attempted`."""
    import asyncio
    from collections import Counter

    from revoker.engine.sched.pacing import RateLimits
    from revoker.engine.sched.pool import RunContext, run_tasks
    from revoker.models import Task, TaskResult

    lines: list[tuple[str, str, str]] = []
    events: list[dict[str, Any]] = []

    class Log:
        run_id = "run-1"

        def task(self, event: str, result: TaskResult, **fields: Any) -> None:
            lines.append((event, result.task.key, str(result.outcome)))

        def event(self, event: str, **fields: Any) -> None:
            events.append({"event": event, **fields})

    done = {"done-key-000001", "done-key-000002"}
    tasks = [Task("app", "na", k) for k in ("done-key-000001", "todo-key-000001")]
    tasks += [Task("app", "na", k) for k in ("done-key-000002", "todo-key-000002")]

    async def go() -> Any:
        halt = Halt()
        halt.trip(HaltReason.INTERRUPTED)
        ctx = RunContext(None, RetryPolicy(), {"GET": RateLimits(0)}, halt)  # type: ignore[arg-type]

        async def runner(task: Task) -> TaskResult:
            raise AssertionError("nothing runs after a halt")

        return await run_tasks(
            iter(tasks),
            runner,
            ctx=ctx,
            audit=Log(),  # type: ignore[arg-type]
            event="revoke",
            concurrency=1,
            planned=Counter({"na": 2}),  # the two pairs still to do
            done_before=lambda task: task.key in done,
        )

    totals = asyncio.run(go())
    assert all(key not in done for _, key, _ in lines), lines
    recorded = len(lines) + sum(e["tasks"] for e in events if e["event"] == "not_started")
    assert recorded == 2
    assert totals.counts == {"not_attempted": 2}


def test_write_audit_halts_the_run_and_says_so_when_the_log_refuses_the_line() -> None:
    from revoker.engine.sched.pool import RunContext
    from revoker.errors import AuditWriteError

    def refuse() -> None:
        raise AuditWriteError("disk full")

    ctx = RunContext(None, RetryPolicy(), {}, Halt())  # type: ignore[arg-type]
    assert ctx.write_audit(refuse) is False
    assert ctx.halt.reason == HaltReason.AUDIT_WRITE_FAILED
    assert ctx.halt.is_set


def test_write_audit_writes_the_line_and_leaves_the_run_going_when_the_log_takes_it() -> None:
    from revoker.engine.sched.pool import RunContext

    lines: list[str] = []
    ctx = RunContext(None, RetryPolicy(), {}, Halt())  # type: ignore[arg-type]
    assert ctx.write_audit(lambda: lines.append("revoke")) is True
    assert lines == ["revoke"]
    assert ctx.halt.reason is None
