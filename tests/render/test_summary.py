"""The run summary: the verdict sentence is the renderer's, the facts the report's."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

from revoker.errors import EXIT_FAILED
from revoker.render.summary import render
from revoker.results import HaltReason, PlanStats, RunReport, Totals


def test_json_summary_has_the_verdict_right_after_the_exit_code() -> None:
    report = RunReport("revoke", "run-1", None, PlanStats(tasks=1), exit_code=EXIT_FAILED)
    report.passes.append(Totals("revoke", counts=Counter({"failed": 1})))
    summary = json.loads(render(report, "json"))
    names = list(summary)
    assert names[names.index("exit_code") + 1] == "verdict"
    assert summary["verdict"] == "some keys were NOT revoked"
    assert "verdict" not in report.to_dict()


def test_the_text_summary_names_the_halt() -> None:
    report = RunReport("revoke", "run-1", None, PlanStats(), halt_reason=HaltReason.INTERRUPTED)
    first = render(report, "text").splitlines()[0]
    assert (
        first
        == "revoker revoke: interrupted: in-flight requests finished; the rest is not_attempted"
    )


def test_rendering_a_summary_loads_neither_the_engine_nor_an_http_stack() -> None:
    code = (
        "import sys, revoker.render.summary; "
        "print(sorted(m for m in ('httpx', 'aiohttp', 'tenacity', 'revoker.engine') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_an_app_with_one_key_found_nowhere_blames_the_key_or_the_app_not_the_app_alone() -> None:
    from revoker.render.summary import app_not_found

    one = app_not_found(1, "this audit log")
    assert "the key or the app ID is wrong" in one
    assert "likely mistake" not in one
    assert "none of its 3 keys" in app_not_found(3, "this audit log")
    assert "the app ID is the likely mistake" in app_not_found(3, "this audit log")
