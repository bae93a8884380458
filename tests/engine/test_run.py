"""The runner: what it tells an observer of the passes it runs, and how it runs them."""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import respx

from revoker.credentials import Credentials
from revoker.engine.run import execute, prepare, revoke_passes
from revoker.engine.sched.collector import YOUNG_THRESHOLD
from revoker.engine.sched.retry import Backoff, RetryPolicy
from revoker.models import TaskResult
from revoker.settings import ClientSettings, InputSettings, RetrySettings, RunSettings
from tests.conftest import APP, BASE, api_not_found, mock_transport

DEFAULT_GC = (700, 10, 10)  # CPython's thresholds


class Watcher:
    def __init__(self) -> None:
        self.started: dict[str, dict[str, Any]] = {}

    def pass_started(
        self,
        event: str,
        total: int,
        rate: float | None,
        *,
        behind: str | None = None,
        delay: float = 0.0,
    ) -> None:
        self.started[event] = {"total": total, "rate": rate, "behind": behind, "delay": delay}

    def recorded(self, event: str, result: TaskResult) -> None:
        pass


def answer(request: httpx.Request) -> httpx.Response:
    echo = {"X-Request-ID": request.headers["X-Request-ID"]}
    return httpx.Response(200, json={"status": "success", "data": []}, headers=echo)


def _execute_one_key(
    tmp_path: Path,
    *,
    observer: Watcher | None = None,
    on_result: Callable[[TaskResult], None] | None = None,
    **run: Any,
) -> None:
    """``revoke`` of one key in na against mocked answers, with ``run``'s settings."""
    settings = RunSettings(
        inputs=InputSettings(keys=("stream-key-0000-abcdef",), app_id=APP, regions=("na",)),
        client=ClientSettings(base_url=BASE, concurrency=2),
        retry=RetrySettings(max_attempts=1),
        audit_log=tmp_path / "audit.jsonl",
        **run,
    )
    plan = prepare(settings, resume_events=("revoke",))
    with respx.mock(base_url=BASE, assert_all_called=False) as api:
        api.get(url__regex=r".*/online-streams.*").mock(side_effect=answer)
        api.delete(url__regex=r".*/streamkeys/.*").mock(side_effect=answer)
        api.get(url__regex=r".*/streamkeys/.*").mock(side_effect=api_not_found)
        execute(
            "revoke",
            settings,
            plan,
            Credentials("cid", "secret"),
            revoke_passes(settings, plan),
            transport=mock_transport(),
            install_signal_handlers=False,
            retry=RetryPolicy(1, Backoff(0.001, 0.01)),
            on_result=on_result,
            observer=observer,
        )


def test_the_verify_pass_behind_the_deletes_is_announced_as_following_them(
    tmp_path: Path,
) -> None:
    watcher = Watcher()
    _execute_one_key(
        tmp_path, observer=watcher, max_rps=40, disconnect=True, verify=True, verify_delay=0.01
    )
    assert watcher.started["revoke"]["behind"] is None
    verify = watcher.started["verify"]
    assert verify == {"total": 1, "rate": 40.0, "behind": "revoke", "delay": 0.01}


def test_the_passes_run_under_the_run_collector_settings_and_leave_them(tmp_path: Path) -> None:
    before = gc.get_threshold()
    gc.set_threshold(*DEFAULT_GC)
    seen: list[int] = []
    try:
        _execute_one_key(tmp_path, on_result=lambda result: seen.append(gc.get_threshold()[0]))
        assert seen == [YOUNG_THRESHOLD]
        assert gc.get_threshold() == DEFAULT_GC
    finally:
        gc.set_threshold(*before)
