"""revoker report: merge audit logs, latest outcome per task, text/json/markdown, exit codes."""

from __future__ import annotations

import gzip
import json
import os
import threading
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from revoker.audit.merge import build_report
from revoker.cli import main
from revoker.errors import AuditLogError


def line(event: str, region: str, key: str, outcome: str, ts: str, **extra: Any) -> str:
    record = {
        "event": event, "ts": ts, "run_id": "r1", "app_id": "app1", "region": region,
        "key_id": f"sha256:{key}", "key_hint": "***", "outcome": outcome,
        "http_status": {"revoked": 200, "absent": 404, "failed": 503}.get(outcome),
        "request_id": f"req-{key}-{region}",
        "attempts": [{"request_id": f"req-{key}-{region}", "status": 503,
                      "server_request_id": f"srv-{key}-{region}"}],
        "message": "Service overload" if outcome == "failed" else None, **extra,
    }  # fmt: skip
    return json.dumps(record) + "\n"


def write(path: Path, *lines: str) -> Path:
    """A log of ``lines``; unless they bring their own runs, inside a finished run r1
    (planned count not recorded, so any number of task lines is complete)."""
    if not any('"run_started"' in x for x in lines):
        lines = (
            run_event("run_started", "r1", "2026-01-01T00:00:00.000Z", command="revoke"),
            run_event("run_finished", "r1", "2026-01-01T00:00:00.000Z", exit_code=0),
            *lines,
        )
    path.write_text("".join(lines), encoding="utf-8")
    return path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["report", *args])
    return result.exit_code, result.output


def test_latest_outcome_wins_across_logs_and_order_of_arguments(tmp_path: Path) -> None:
    first = write(
        tmp_path / "first.jsonl",
        line("revoke", "na", "a", "failed", "2026-01-01T00:00:00.000Z"),
        line("revoke", "eu", "a", "revoked", "2026-01-01T00:00:00.000Z"),
    )
    resumed = write(
        tmp_path / "resumed.jsonl",
        line("revoke", "na", "a", "revoked", "2026-01-01T00:05:00.000Z"),
    )
    for order in ((first, resumed), (resumed, first)):
        report = build_report(list(order))
        assert report.totals()["revoke"] == {"revoked": 2}
        assert report.superseded == 1
        assert report.exit_code == 0
    code, out = run(str(resumed), str(first))
    assert code == 0
    assert "all 2 tasks done" in out


def test_failures_are_listed_with_request_ids_and_exit_1(tmp_path: Path) -> None:
    log = write(
        tmp_path / "a.jsonl",
        line("revoke", "na", "a", "failed", "2026-01-01T00:00:00.000Z"),
        line("revoke", "eu", "a", "not_attempted", "2026-01-01T00:00:00.000Z"),
        line("revoke", "ap", "a", "absent", "2026-01-01T00:00:00.000Z"),
    )
    code, out = run(str(log), "--format", "json")
    assert code == 1
    data = json.loads(out)
    assert data["counts"]["revoke"]["per_region"]["na"] == {"failed": 1}
    (failed,) = (p for p in data["problems"] if p["outcome"] == "failed")
    assert failed["request_ids"] == ["req-a-na"]
    assert failed["server_request_ids"] == ["srv-a-na"]
    assert failed["message"] == "Service overload"
    assert {p["outcome"] for p in data["problems"]} == {"failed", "not_attempted"}


def test_verify_present_is_a_problem_but_query_present_is_not(tmp_path: Path) -> None:
    log = write(
        tmp_path / "a.jsonl",
        line("query", "na", "a", "present", "2026-01-01T00:00:00.000Z", matched=False),
    )
    assert run(str(log))[0] == 0
    write(log, line("verify", "na", "a", "present", "2026-01-01T00:00:00.000Z"))
    assert run(str(log))[0] == 1


def test_disconnect_lines_are_separate_tasks_per_sid(tmp_path: Path) -> None:
    log = write(
        tmp_path / "a.jsonl",
        line("disconnect", "na", "a", "disconnected", "2026-01-01T00:00:00.000Z", sid="S1"),
        line("disconnect", "na", "a", "disconnected", "2026-01-01T00:00:00.000Z", sid="S2"),
    )
    assert build_report([log]).totals()["disconnect"] == {"disconnected": 2}


def test_torn_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    log = write(
        tmp_path / "a.jsonl",
        line("revoke", "na", "a", "revoked", "2026-01-01T00:00:00.000Z"),
        '{"event":"revoke","ts":"2026-01-01T00:00:01',  # killed mid-write
    )
    code, out = run(str(log))
    assert code == 0
    assert "1 torn lines skipped" in out
    assert json.loads(run(str(log), "--format", "json")[1])["torn_lines"] == 1


def test_markdown_has_heading_verdict_region_table_and_problems(tmp_path: Path) -> None:
    log = write(
        tmp_path / "a.jsonl",
        line("revoke", "na", "a", "revoked", "2026-01-01T00:00:00.000Z"),
        line("revoke", "eu", "a", "failed", "2026-01-01T00:00:00.000Z", message="bad | pipe"),
    )
    code, out = run(str(log), "--format", "markdown")
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == "## revoker audit report"
    assert lines[2].startswith("**❌ 1 of 2 tasks NOT done")
    assert "| region | revoked | failed |" in lines
    assert "| na | 1 | 0 |" in lines
    assert "| **total** | **1** | **1** |" in lines
    problem = next(x for x in lines if x.startswith("| revoke | eu |"))
    assert "bad \\| pipe" in problem
    assert problem.count(" | ") == 7  # 8 columns: the escaped pipe does not split a cell


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_unreadable_log_exits_2(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "nope.jsonl"
    if kind == "directory":
        path.mkdir()
    code, out = run(str(path))
    assert code == 2
    assert "cannot read audit log" in out


def test_no_argument_is_a_usage_error() -> None:
    assert run()[0] == 2


def run_event(event: str, run_id: str, ts: str, **extra: Any) -> str:
    return json.dumps({"event": event, "ts": ts, "run_id": run_id, **extra}) + "\n"


def test_a_killed_run_that_was_never_resumed_fails_the_report(tmp_path: Path) -> None:
    log = write(
        tmp_path / "audit.jsonl",
        run_event("run_started", "r1", "2026-01-01T00:00:00.000Z", command="revoke",
                  options={"resume": False}, counts={"tasks": 240}),
        line("revoke", "na", "a", "revoked", "2026-01-01T00:00:01.000Z"),
    )  # fmt: skip
    code, out = run(str(log))
    assert code == 1
    assert "never finished" in out


def test_a_killed_run_resumed_to_the_end_in_the_same_log_passes(tmp_path: Path) -> None:
    log = write(
        tmp_path / "audit.jsonl",
        run_event("run_started", "r1", "2026-01-01T00:00:00.000Z", command="revoke",
                  options={"resume": False}, counts={"tasks": 2}),
        line("revoke", "na", "a", "revoked", "2026-01-01T00:00:01.000Z"),
        run_event("run_started", "r2", "2026-01-01T00:10:00.000Z", command="revoke",
                  options={"resume": True}, counts={"tasks": 1}),
        line("revoke", "eu", "a", "revoked", "2026-01-01T00:10:01.000Z", run_id="r2"),
        run_event("run_finished", "r2", "2026-01-01T00:10:02.000Z", exit_code=0),
    )  # fmt: skip
    code, out = run(str(log))
    assert code == 0, out
    assert "all 2 tasks done" in out


def _run_line(event: str, run_id: str, ts: str, **fields: Any) -> str:
    return json.dumps({"event": event, "ts": ts, "run_id": run_id, **fields}) + "\n"


def test_not_started_tasks_count_as_not_attempted_until_a_resume_run_finishes(
    tmp_path: Path,
) -> None:
    stopped = [
        _run_line("run_started", "r1", "2026-01-01T00:00:00.000Z", options={}, counts={}),
        line("revoke", "na", "a", "revoked", "2026-01-01T00:00:01.000Z"),
        _run_line(
            "not_started",
            "r1",
            "2026-01-01T00:00:02.000Z",
            for_event="revoke",
            outcome="not_attempted",
            message="interrupted",
            tasks=3,
            per_region={"eu": 1, "ap": 2},
        ),
        _run_line("run_finished", "r1", "2026-01-01T00:00:03.000Z", exit_code=130),
    ]
    log = write(tmp_path / "audit.jsonl", *stopped)
    report = build_report([log])
    assert report.totals()["revoke"] == {"revoked": 1, "not_attempted": 3}
    assert report.counts()["revoke"]["ap"] == {"not_attempted": 2}
    assert report.to_dict()["tasks"] == 4
    assert report.exit_code == 1
    assert "3 of 4 tasks NOT done" in report.verdict()

    resumed = [
        _run_line(
            "run_started", "r2", "2026-01-01T01:00:00.000Z", options={"resume": True}, counts={}
        ),
        line("revoke", "eu", "a", "revoked", "2026-01-01T01:00:01.000Z"),
        line("revoke", "ap", "b", "revoked", "2026-01-01T01:00:01.000Z"),
        line("revoke", "ap", "c", "revoked", "2026-01-01T01:00:01.000Z"),
        _run_line("run_finished", "r2", "2026-01-01T01:00:02.000Z", exit_code=0),
    ]
    log = write(tmp_path / "audit.jsonl", *stopped, *resumed)
    report = build_report([log])
    assert report.totals()["revoke"] == {"revoked": 4}
    assert report.exit_code == 0


@pytest.mark.parametrize("kind", ["empty", "gzipped", "passwd", "task-lines-only"])
def test_a_file_with_no_run_is_refused_with_exit_2_naming_it(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "audit.jsonl"
    task = line("revoke", "na", "a", "revoked", "2026-01-01T00:00:00.000Z")
    path.write_bytes(
        {
            "empty": b"",
            "gzipped": gzip.compress(task.encode()),
            "passwd": b"root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/:/usr/sbin/nologin\n",
            "task-lines-only": task.encode(),
        }[kind]
    )
    for fmt in ("text", "markdown", "json"):
        code, out = run(str(path), "--format", fmt)
        assert code == 2, out
        assert f"{path}: not a revoker audit log: no run_started line" in out
        assert "done" not in out


def test_a_finished_run_with_fewer_task_lines_than_planned_is_incomplete(tmp_path: Path) -> None:
    log = write(
        tmp_path / "audit.jsonl",
        run_event("run_started", "r1", "2026-01-01T00:00:00.000Z", command="revoke",
                  options={"resume": False}, counts={"tasks": 4}),
        line("revoke", "na", "a", "revoked", "2026-01-01T00:00:01.000Z"),
        line("revoke", "eu", "a", "revoked", "2026-01-01T00:00:01.000Z"),
        run_event("run_finished", "r1", "2026-01-01T00:00:02.000Z", exit_code=0),
    )  # fmt: skip
    code, out = run(str(log))
    assert code == 1
    assert "INCOMPLETE: 1 run(s) recorded fewer task lines than they planned (2 missing)" in out
    code, out = run(str(log), "--format", "markdown")
    assert (code, out.splitlines()[2].startswith("**❌ INCOMPLETE")) == (1, True)
    code, out = run(str(log), "--format", "json")
    data = json.loads(out)
    assert (code, data["exit_code"]) == (1, 1)
    assert [(r["run_id"], r["planned"], r["recorded"]) for r in data["incomplete_runs"]] == [
        ("r1", 4, 2)
    ]


def test_a_rerun_finding_a_revoked_key_absent_keeps_it_revoked(tmp_path: Path) -> None:
    first = write(
        tmp_path / "first.jsonl",
        line("revoke", "na", "a", "revoked", "2026-01-01T00:00:00.000Z"),
        line("revoke", "eu", "a", "failed", "2026-01-01T00:00:00.000Z"),
    )
    rerun = write(
        tmp_path / "rerun.jsonl",
        line("revoke", "na", "a", "absent", "2026-01-01T00:05:00.000Z"),
        line("revoke", "eu", "a", "absent", "2026-01-01T00:05:00.000Z"),
    )
    for order in ((first, rerun), (rerun, first)):
        report = build_report(list(order))
        assert report.totals()["revoke"] == {"revoked": 1, "absent": 1}
        assert report.exit_code == 0
    # within one log too, and a later failure still wins (the latest attempt failed)
    same = write(
        tmp_path / "same.jsonl",
        line("revoke", "na", "a", "revoked", "2026-01-01T00:00:00.000Z"),
        line("revoke", "na", "a", "absent", "2026-01-01T00:05:00.000Z"),
        line("revoke", "eu", "a", "revoked", "2026-01-01T00:00:00.000Z"),
        line("revoke", "eu", "a", "failed", "2026-01-01T00:05:00.000Z"),
    )
    assert build_report([same]).totals()["revoke"] == {"revoked": 1, "failed": 1}


def test_markdown_cells_escape_pipes_html_backticks_and_newlines(tmp_path: Path) -> None:
    hostile = "x | y <script>alert(1)</script> `z`\n| forged | row |\x1b[2K"
    log = write(tmp_path / "a.jsonl", line("revoke", "na", "k1", "failed", "t1", message=hostile))
    _, out = run(str(log), "--format", "markdown")
    [row] = [r for r in out.splitlines() if "sha256:k1" in r]
    assert row.count(" | ") == 7  # eight cells, none added by the message
    assert "<script>" not in out
    assert "`z`" not in out
    assert "\x1b" not in out
    assert "&lt;script&gt;" in row


def test_text_report_escapes_terminal_control_characters(tmp_path: Path) -> None:
    log = write(
        tmp_path / "a.jsonl",
        line("revoke", "na", "k1", "failed", "t1", message="oops\x1b[2K\rrevoked"),
    )
    _, out = run(str(log))
    assert "\x1b" not in out
    assert "oops\\x1b[2K\\x0drevoked" in out


def test_wrongly_typed_nested_fields_and_a_deeply_nested_line_are_skipped_as_torn(
    tmp_path: Path,
) -> None:
    bad = json.loads(line("revoke", "na", "k1", "failed", "t1"))
    bad["attempts"] = [{"request_id": 12345}]
    log = write(
        tmp_path / "a.jsonl",
        json.dumps(bad) + "\n",
        "[" * 100_000 + "]" * 100_000 + "\n",
        line("revoke", "eu", "k2", "revoked", "t2"),
    )
    result = CliRunner().invoke(main, ["report", str(log)])
    assert not isinstance(result.exception, RecursionError | TypeError), result.exception
    assert "2 torn lines skipped" in result.output
    assert result.exit_code == 0


def test_a_resumed_run_of_another_command_does_not_finish_a_stopped_revoke(
    tmp_path: Path,
) -> None:
    """`verify --resume` after a stopped `revoke` resumes none of the revoke's pairs."""
    stopped = [
        _run_line("run_started", "r1", "2026-01-01T00:00:00.000Z", command="revoke",
                  options={}, counts={}),
        line("revoke", "na", "a", "revoked", "2026-01-01T00:00:01.000Z"),
        _run_line("not_started", "r1", "2026-01-01T00:00:02.000Z", for_event="revoke",
                  outcome="not_attempted", message="interrupted", tasks=3,
                  per_region={"eu": 1, "ap": 2}),
        _run_line("run_finished", "r1", "2026-01-01T00:00:03.000Z", exit_code=130),
        _run_line("run_started", "r2", "2026-01-01T01:00:00.000Z", command="verify",
                  options={"resume": True}, counts={}),
        line("verify", "na", "a", "absent", "2026-01-01T01:00:01.000Z"),
        _run_line("run_finished", "r2", "2026-01-01T01:00:02.000Z", exit_code=0),
    ]  # fmt: skip
    report = build_report([write(tmp_path / "audit.jsonl", *stopped)])
    assert report.totals()["revoke"] == {"revoked": 1, "not_attempted": 3}
    assert report.exit_code == 1


def test_a_rotate_run_missing_result_lines_is_incomplete_whatever_its_intent_lines(
    tmp_path: Path,
) -> None:
    started = _run_line("run_started", "r1", "2026-01-01T00:00:00.000Z", command="rotate",
                        options={}, counts={"tasks": 2})  # fmt: skip
    intent = json.loads(line("rotate", "na", "a", "unknown", "2026-01-01T00:00:01.000Z"))
    result = json.loads(line("rotate", "na", "a", "rotated", "2026-01-01T00:00:02.000Z"))
    intents = [json.dumps({**intent, "phase": p}) + "\n" for p in ("delete", "create")]
    finished = _run_line("run_finished", "r1", "2026-01-01T00:00:03.000Z", exit_code=0)
    log = write(
        tmp_path / "audit.jsonl",
        started,
        *intents,
        json.dumps({**result, "phase": "result"}) + "\n",
        finished,
    )
    report = build_report([log])
    assert [(r["run_id"], r["recorded"]) for r in report.incomplete_runs()] == [("r1", 1)]
    assert report.exit_code == 1


def test_a_duplicated_task_line_does_not_hide_a_deleted_one(tmp_path: Path) -> None:
    log = write(
        tmp_path / "audit.jsonl",
        run_event("run_started", "r1", "2026-01-01T00:00:00.000Z", command="revoke",
                  options={"resume": False}, counts={"tasks": 2}),
        line("revoke", "na", "a", "revoked", "2026-01-01T00:00:01.000Z"),
        line("revoke", "na", "a", "revoked", "2026-01-01T00:00:01.000Z"),  # eu's line was
        run_event("run_finished", "r1", "2026-01-01T00:00:02.000Z", exit_code=0),
    )  # fmt: skip
    code, out = run(str(log))
    assert code == 1, out
    assert "INCOMPLETE: 1 run(s) recorded fewer task lines than they planned (1 missing)" in out


def _nightly_log(path: Path, keys: int, nights: int, attempts: int = 1) -> Path:
    """``nights`` finished revoke runs over the same ``keys`` keys in four regions: the
    first revokes them, the later ones find them absent (a cron job's year)."""
    with path.open("w", encoding="utf-8") as out:
        for night in range(nights):
            run_id, day = f"night-{night}", f"2026-01-{1 + night % 28:02d}T0{night // 28}"
            out.write(run_event("run_started", run_id, f"{day}:00:00.000Z", command="revoke",
                                options={"resume": False}, counts={"tasks": keys * 4}))  # fmt: skip
            for i in range(keys * 4):
                region, outcome = ("na", "eu", "ap", "cn")[i % 4], "absent" if night else "revoked"
                record = json.loads(line("revoke", region, f"{i // 4:032x}", outcome,
                                         f"{day}:00:01.000Z"))  # fmt: skip
                record["run_id"] = run_id
                record["attempts"] = record["attempts"] * attempts
                out.write(json.dumps(record) + "\n")
            out.write(run_event("run_finished", run_id, f"{day}:00:02.000Z", exit_code=0))
    return path


def _held(path: Path) -> tuple[int, int]:
    """(bytes still held by the report once built, peak bytes while building it)."""
    tracemalloc.start()
    try:
        report = build_report([path])
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.exit_code == 0, report.verdict()
    return held, peak


def test_memory_does_not_grow_with_the_number_of_successful_task_lines(tmp_path: Path) -> None:
    two_nights = _held(_nightly_log(tmp_path / "two.jsonl", keys=1_000, nights=2))
    ten_nights = _held(_nightly_log(tmp_path / "ten.jsonl", keys=1_000, nights=10))
    # Five times the lines over the same tasks: about the same memory (runs add a little).
    assert ten_nights[0] < two_nights[0] * 1.5
    assert ten_nights[1] < two_nights[1] * 1.5


def test_memory_per_task_is_small_and_not_the_size_of_its_records(tmp_path: Path) -> None:
    small = _held(_nightly_log(tmp_path / "small.jsonl", keys=500, nights=1))
    large = _held(_nightly_log(tmp_path / "large.jsonl", keys=5_000, nights=1))
    fat = _held(_nightly_log(tmp_path / "fat.jsonl", keys=5_000, nights=1, attempts=20))
    per_task = (large[1] - small[1]) / (4 * 4_500)
    assert per_task < 250  # bytes; a whole record held was about 3,400
    assert fat[1] < large[1] * 1.2  # records 10 times larger: the same memory


def test_a_log_changed_while_the_report_reads_it_is_an_error_not_a_wrong_row(
    tmp_path: Path,
) -> None:
    log = write(tmp_path / "audit.jsonl",
                line("revoke", "na", "a", "failed", "2026-01-01T00:00:01.000Z"))  # fmt: skip
    report = build_report([log])
    write(log, line("revoke", "na", "b", "revoked", "2026-01-01T00:00:01.000Z"))
    with pytest.raises(AuditLogError, match="changed while the report read it"):
        report.problems()


def _through_a_pipe(tmp_path: Path, text: str) -> Path:
    """A FIFO fed ``text`` once by a thread: a log that can be read only once."""
    fifo = tmp_path / "audit.fifo"
    os.mkfifo(fifo)

    def feed() -> None:
        with fifo.open("w", encoding="utf-8") as out:
            out.write(text)

    threading.Thread(target=feed, daemon=True).start()
    return fifo


def test_a_log_read_from_a_pipe_lists_its_problems(tmp_path: Path) -> None:
    log = write(tmp_path / "audit.jsonl",
                line("revoke", "na", "a", "failed", "2026-01-01T00:00:01.000Z"),
                line("revoke", "eu", "a", "revoked", "2026-01-01T00:00:01.000Z"))  # fmt: skip
    code, out = run(str(_through_a_pipe(tmp_path, log.read_text(encoding="utf-8"))))
    assert code == 1
    assert "revoke na app1 *** sha256:a: failed HTTP 503 Service overload" in out


def test_verify_follows_the_chain_in_the_same_pass_so_a_pipe_can_be_verified(
    tmp_path: Path,
) -> None:
    from revoker.audit.chain import GENESIS, line_hash

    lines, prev = [], GENESIS
    for text in write(tmp_path / "plain.jsonl").read_text(encoding="utf-8").splitlines():
        chained = json.dumps({**json.loads(text), "prev": prev})
        lines.append(chained + "\n")
        prev = line_hash(chained.encode())
    result = CliRunner().invoke(
        main, ["report", "--verify", str(_through_a_pipe(tmp_path, "".join(lines)))]
    )
    assert result.exit_code == 0, result.output
    assert f"chained, head {prev}" in result.output


def test_a_run_whose_lines_come_in_two_blocks_counts_a_duplicate_once(tmp_path: Path) -> None:
    # r1's lines, then r2's, then r1's again (lines appended later, or a copied log):
    # r1's second line of the same task must not stand in for its missing one.
    log = write(
        tmp_path / "audit.jsonl",
        run_event("run_started", "r1", "2026-01-01T00:00:00.000Z", command="revoke",
                  options={"resume": False}, counts={"tasks": 2}),
        line("revoke", "na", "a", "revoked", "2026-01-01T00:00:01.000Z"),
        run_event("run_finished", "r1", "2026-01-01T00:00:02.000Z", exit_code=0),
        run_event("run_started", "r2", "2026-01-01T00:01:00.000Z", command="verify",
                  options={"resume": False}),
        json.dumps({**json.loads(line("revoke", "na", "a", "absent",
                                      "2026-01-01T00:01:01.000Z")), "run_id": "r2"}) + "\n",
        run_event("run_finished", "r2", "2026-01-01T00:01:02.000Z", exit_code=0),
        line("revoke", "na", "a", "revoked", "2026-01-01T00:00:01.000Z"),
    )  # fmt: skip
    report = build_report([log])
    assert [(r["run_id"], r["recorded"]) for r in report.incomplete_runs()] == [("r1", 1)]
