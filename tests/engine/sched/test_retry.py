"""The retry policy's strategies: how long to wait, when to stop."""

from __future__ import annotations

from pathlib import Path

import httpx
from tenacity import AsyncRetrying, RetryCallState

from revoker.agora.auth import Credentials
from revoker.agora.client import ApiResponse
from revoker.engine.run import execute, prepare, revoke_passes
from revoker.engine.sched.pool import Halt
from revoker.engine.sched.retry import Backoff, RetryPolicy, StopWhenHalted
from revoker.errors import TransportFailure
from revoker.results import HaltReason
from revoker.settings import ClientSettings, InputSettings, RetrySettings, RunSettings


def state_after(attempt: int, outcome: ApiResponse | BaseException) -> RetryCallState:
    state = RetryCallState(AsyncRetrying(), None, (), {})
    state.attempt_number = attempt
    if isinstance(outcome, BaseException):
        state.set_exception((type(outcome), outcome, None))
    else:
        state.set_result(outcome)
    return state


def answer(status: int, retry_after: float | None = None) -> ApiResponse:
    return ApiResponse(status, "req", None, "agora.test", 1, retry_after=retry_after)


def refused() -> TransportFailure:
    return TransportFailure("connect_error", "agora.test", True, "req", 1)


def test_retry_after_is_honoured_up_to_its_cap() -> None:
    wait = Backoff(base=5.0, cap=5.0, retry_after_cap=60.0)
    assert wait(state_after(1, answer(429, retry_after=2.0))) == 2.0
    assert wait(state_after(1, answer(503, retry_after=3600.0))) == 60.0


def test_without_retry_after_the_wait_is_full_jitter_below_the_cap() -> None:
    wait = Backoff(base=1.0, cap=4.0)
    waits = [wait(state_after(n, answer(500))) for n in range(1, 6) for _ in range(20)]
    assert all(0 <= w <= 4.0 for w in waits)


def test_a_refused_connection_switches_to_the_fallback_host_at_once_then_backs_off() -> None:
    wait = Backoff(base=1.0, cap=1.0).with_fallback(True)
    assert wait(state_after(1, refused())) == 0.0
    assert wait(state_after(3, refused())) == 0.0
    assert 0 <= wait(state_after(2, refused())) <= 1.0
    no_fallback = Backoff(base=1.0, cap=1.0, retry_after_cap=0.0)
    assert no_fallback.with_fallback(False) is no_fallback


def test_the_policy_stops_at_its_attempt_cap_or_once_the_run_halts() -> None:
    halt = Halt()
    stop = RetryPolicy(max_attempts=3).stop(halt)
    assert not stop(state_after(2, answer(500)))
    assert stop(state_after(3, answer(500)))
    halt.trip(HaltReason.INTERRUPTED)
    assert stop(state_after(1, answer(500)))
    assert StopWhenHalted(halt)(state_after(1, answer(500)))


def test_the_policy_comes_from_the_retry_settings() -> None:
    policy = RetryPolicy.from_settings(RetrySettings(max_attempts=4, backoff_max=2.0))
    assert policy.max_attempts == 4
    assert policy.wait.cap == 2.0


def test_a_run_uses_the_policy_its_caller_passes(tmp_path: Path) -> None:
    settings = RunSettings(
        inputs=InputSettings(keys=("key-one",), app_id="app", regions=("na",)),
        client=ClientSettings(base_url="https://agora.test"),
        max_rps=0,
        audit_log=tmp_path / "audit.jsonl",
    )
    sent: list[httpx.Request] = []

    def answer_500(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(500, json={})

    plan = prepare(settings)
    report = execute(
        "revoke",
        settings,
        plan,
        Credentials("cid", "sec"),
        revoke_passes(settings, plan),
        transport=httpx.MockTransport(answer_500),
        install_signal_handlers=False,
        retry=RetryPolicy(max_attempts=2, wait=Backoff(0.001, 0.001)),
    )
    assert report.exit_code == 1
    assert len(sent) == 2, "the policy's cap, not the settings' default of 6"
