"""The run summary: the verdict sentence is the renderer's, the facts the report's."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from revoker.errors import EXIT_ABORTED, EXIT_FAILED, EXIT_INTERRUPTED
from revoker.render.summary import render
from revoker.results import HaltReason, KeyVerdicts, PlanStats, RunReport, Totals


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


def _steps(report: RunReport, argv: list[str]) -> list[str]:
    lines = render(report, "text", argv).splitlines()
    return lines[lines.index("next:") + 1 : -1]


def test_an_interrupted_run_from_stdin_says_how_to_resume_it() -> None:
    report = RunReport(
        "revoke", "run-1", Path("my log.jsonl"), PlanStats(tasks=8),
        halt_reason=HaltReason.INTERRUPTED, exit_code=EXIT_INTERRUPTED,
    )  # fmt: skip
    report.passes.append(Totals("revoke", counts=Counter({"revoked": 3, "not_attempted": 5})))
    steps = _steps(report, ["revoke", "-", "--audit-log", "my log.jsonl"])
    assert steps[:3] == [
        "  resume (5 tasks failed or not attempted; done pairs are skipped):",
        "    revoker revoke - --audit-log 'my log.jsonl' --resume",
        "    (feed it the same keys on stdin)",
    ]
    assert "  every failure with its request IDs: revoker report 'my log.jsonl'" in steps


def test_a_401_says_to_fix_the_credentials_before_resuming() -> None:
    report = RunReport(
        "revoke", "run-1", Path("a.jsonl"), PlanStats(tasks=4),
        halt_reason=HaltReason.AUTH_REJECTED, exit_code=EXIT_ABORTED,
    )  # fmt: skip
    steps = _steps(report, ["revoke", "keys.csv", "--resume"])
    assert steps[0].startswith("  fix the credentials (AGORA_CUSTOMER_ID/SECRET), then resume")
    assert steps[1] == "    revoker revoke keys.csv --resume"  # --resume not given twice


def test_live_streams_left_running_get_the_disconnect_command() -> None:
    report = RunReport("revoke", "run-1", Path("a.jsonl"), PlanStats(tasks=4))
    report.passes.append(Totals("revoke", counts=Counter({"revoked": 4})))
    report.keys = KeyVerdicts(keys=1, revoked=1, live_streams=2)
    steps = _steps(report, ["revoke", "keys.csv"])
    assert steps[:2] == [
        "  cut the 2 live streams still running with these keys:",
        "    revoker revoke keys.csv --resume --disconnect",
    ]


def test_a_dry_run_says_how_to_run_it_for_real() -> None:
    report = RunReport("revoke", "-", None, PlanStats(tasks=4), dry_run=True)
    assert _steps(report, ["revoke", "keys.csv", "--dry-run", "--verify"]) == [
        "  run it: revoker revoke keys.csv --verify"
    ]


def test_a_run_that_ended_well_says_how_to_check_its_log_later() -> None:
    report = RunReport("revoke", "run-1", Path("a.jsonl"), PlanStats(tasks=4), audit_head="ab12")
    report.passes.append(Totals("revoke", counts=Counter({"revoked": 4})))
    lines = render(report, "text", ["revoke", "keys.csv"]).splitlines()
    assert "  keep the head for the review: revoker report --verify a.jsonl --expect-head ab12" in (
        lines
    )
    assert lines[0] == "revoker revoke: every key revoked in every region"
    assert lines[-1] == "revoker revoke: every key revoked in every region (exit code 0)"


def test_more_failures_than_shown_say_where_the_rest_are() -> None:
    report = RunReport("revoke", "run-1", Path("a.jsonl"), PlanStats(tasks=30), exit_code=1)
    failure = {"region": "na", "app_id": "a", "key_hint": "k", "key_id": "sha256:0",
               "http_status": 503, "message": None, "request_ids": ["r"]}  # fmt: skip
    report.passes.append(Totals("revoke", counts=Counter({"failed": 30}), failures=[failure] * 30))
    assert (
        "  failures (first 20 of 30; all of them: revoker report a.jsonl):"
        in render(report, "text").splitlines()
    )


def test_a_failed_verify_says_to_run_it_again_not_to_resume() -> None:
    report = RunReport("verify", "run-1", Path("a.jsonl"), PlanStats(tasks=4), exit_code=1)
    report.passes.append(Totals("verify", counts=Counter({"absent": 3, "failed": 1})))
    steps = _steps(report, ["verify", "keys.csv"])
    assert steps[:2] == [
        "  check again (1 tasks failed or not attempted):",
        "    revoker verify keys.csv",
    ]


def test_a_failure_nothing_answered_shows_no_http_status_rather_than_none(
    tmp_path: Path,
) -> None:
    from revoker.audit.merge import build_report
    from revoker.render.report import render_report

    failure = {
        "region": "na", "app_id": "app1", "key_hint": "K1aa...aaa", "key_id": "sha256:00",
        "http_status": None, "message": "left running: no live stream matched this key",
        "request_ids": [],
    }  # fmt: skip
    report = RunReport("revoke", "run-1", Path("a.jsonl"), PlanStats(tasks=1))
    report.passes.append(Totals("disconnect", counts=Counter({"failed": 1}), failures=[failure]))
    line = next(x for x in render(report, "text").splitlines() if "left running" in x)
    assert "HTTP - left running" in line
    assert line.endswith("request_ids=-")

    log = tmp_path / "a.jsonl"
    record = {
        "event": "disconnect", "ts": "2026-01-01T00:00:01.000Z", "run_id": "r1",
        "app_id": "app1", "region": "na", "key_id": "sha256:00", "key_hint": "K1aa...aaa",
        "outcome": "failed", "http_status": None, "message": "left running", "attempts": [],
    }  # fmt: skip
    start = {"event": "run_started", "ts": "2026-01-01T00:00:00.000Z", "run_id": "r1",
             "command": "revoke"}  # fmt: skip
    log.write_text(json.dumps(start) + "\n" + json.dumps(record) + "\n", encoding="utf-8")
    text = render_report(build_report([log]), "text")
    assert "failed HTTP - left running" in text
    assert "HTTP None" not in text
