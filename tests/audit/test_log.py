from __future__ import annotations

import errno
import json
import os
import stat
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import respx
from click.testing import CliRunner

from revoker.audit.log import (
    AuditLog,
    ReadStats,
    iter_records,
    load_done,
    now_rfc3339,
    task_record,
)
from revoker.cli import main
from revoker.errors import AuditLogError, AuditWriteError
from revoker.models import Attempt, Outcome, Task, TaskResult, done_digest, key_id
from tests.conftest import APP, BASE

TASK = Task("app1", "eu", "stream-key-0123456789")


def result(outcome: Outcome, status: int | None = 200) -> TaskResult:
    attempts = [
        Attempt("rid-1", "api.agora.io", status=503, ms=5, server_request_id="rid-1"),
        Attempt("rid-2", "api.agora.io", status=status, ms=7, server_request_id="rid-2"),
    ]
    return TaskResult(TASK, outcome, attempts, duration_ms=12, message=None)


def test_new_log_is_created_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    AuditLog.open(path, "run-1").close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_existing_log_readable_by_others_is_tightened_to_0600(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text("")
    path.chmod(0o644)
    AuditLog.open(path, "run-1").close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_task_record_has_every_contract_field_and_no_plain_key(tmp_path: Path) -> None:
    record = task_record("revoke", result(Outcome.REVOKED), "run-1", reveal_keys=False)
    assert set(record) >= {
        "event",
        "ts",
        "run_id",
        "app_id",
        "region",
        "key_id",
        "key_hint",
        "outcome",
        "http_status",
        "request_id",
        "server_request_id",
        "attempts",
        "duration_ms",
        "message",
    }
    assert record["key_id"] == key_id(TASK.key)
    assert record["key_hint"] == "stre...789"
    assert record["request_id"] == "rid-2"
    assert [a["status"] for a in record["attempts"]] == [503, 200]
    assert TASK.key not in json.dumps(record)
    assert record["ts"].endswith("Z")


def test_reveal_keys_writes_the_plain_key() -> None:
    record = task_record("revoke", result(Outcome.REVOKED), "run-1", reveal_keys=True)
    assert record["key"] == TASK.key


def test_each_record_is_one_line_written_at_once(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog.open(path, "run-1")
    log.task("revoke", result(Outcome.REVOKED))
    assert path.read_text().count("\n") == 1, "on disk before close"
    log.task("revoke", result(Outcome.FAILED, 503))
    log.close()
    assert [r["outcome"] for r in iter_records(path)] == ["revoked", "failed"]


def test_a_torn_last_line_is_skipped_and_ended_before_appending(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    line = json.dumps(task_record("revoke", result(Outcome.REVOKED), "r", False))
    path.write_text(line + "\n" + line[: len(line) // 2])
    stats = ReadStats()
    assert len(list(iter_records(path, stats))) == 1
    assert stats.torn == 1
    log = AuditLog.open(path, "run-2")
    log.event("run_started")
    log.close()
    records = list(iter_records(path))
    assert [r["event"] for r in records] == ["revoke", "run_started"], "the new line stays whole"


def test_load_done_takes_the_latest_outcome_of_each_task(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog.open(path, "run-1")
    other = Task("app1", "na", "another-key-000000")
    log.task("revoke", result(Outcome.FAILED, 503))
    log.task("revoke", result(Outcome.REVOKED))
    log.task("revoke", TaskResult(other, Outcome.ABSENT))
    log.task("revoke", TaskResult(other, Outcome.FAILED))
    log.task("verify", TaskResult(Task("app1", "cn", "k"), Outcome.ABSENT))
    log.close()
    assert load_done(path) == {done_digest("app1", "eu", key_id(TASK.key))}


def test_load_done_of_a_missing_log_is_empty(tmp_path: Path) -> None:
    assert load_done(tmp_path / "none.jsonl") == set()


def test_umask_cannot_widen_the_mode(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        AuditLog.open(tmp_path / "a.jsonl", "r").close()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.jsonl").stat().st_mode) == 0o600


def test_lines_with_wrongly_typed_fields_are_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    good = task_record("revoke", result(Outcome.REVOKED), "r", False)
    bad_outcome = {**good, "outcome": ["failed"]}
    bad_attempts = {**good, "attempts": 5}
    path.write_text("\n".join(json.dumps(r) for r in (bad_outcome, good, bad_attempts)) + "\n")
    stats = ReadStats()
    assert [r["outcome"] for r in iter_records(path, stats)] == ["revoked"]
    assert stats.torn == 2
    assert load_done(path) == {done_digest("app1", "eu", key_id(TASK.key))}


def test_a_second_writer_on_the_same_log_is_refused_while_the_first_holds_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.jsonl"
    first = AuditLog.open(path, "run-1")
    with pytest.raises(AuditLogError, match="another revoker run is writing this audit log"):
        AuditLog.open(path, "run-2")
    first.close()
    AuditLog.open(path, "run-3").close()  # free again once the first run is done


@pytest.mark.usefixtures("creds")
def test_a_run_on_a_log_another_run_is_writing_exits_2_and_sends_nothing(
    tmp_path: Path, api: respx.MockRouter
) -> None:
    route = api.route().mock(return_value=httpx.Response(200, json={"status": "success"}))
    path = tmp_path / "audit.jsonl"
    running = AuditLog.open(path, "run-1")
    try:
        result = CliRunner().invoke(
            main,
            [
                "revoke",
                "--key",
                "stream-key-0000-abcdef",
                "--app-id",
                APP,
                "--base-url",
                BASE,
                "--audit-log",
                str(path),
            ],
        )
    finally:
        running.close()
    assert result.exit_code == 2
    assert f"{path}: another revoker run is writing this audit log" in result.stderr
    assert route.call_count == 0


def test_a_symlinked_audit_log_is_refused_and_its_target_left_untouched(tmp_path: Path) -> None:
    target = tmp_path / "precious.txt"
    target.write_text("keep me\n")
    target.chmod(0o644)
    link = tmp_path / "audit.jsonl"
    link.symlink_to(target)
    with pytest.raises(AuditLogError, match="symbolic link") as caught:
        AuditLog.open(link, "run-1")
    assert str(link) in str(caught.value)
    assert caught.value.exit_code == 2
    assert target.read_text() == "keep me\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_a_dangling_symlink_as_audit_log_is_refused_and_creates_nothing(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.jsonl"
    link = tmp_path / "audit.jsonl"
    link.symlink_to(target)
    with pytest.raises(AuditLogError, match="symbolic link"):
        AuditLog.open(link, "run-1")
    assert not target.exists()


def test_resume_holds_about_a_16_byte_digest_per_done_pair_not_a_record(tmp_path: Path) -> None:
    import tracemalloc

    path = tmp_path / "audit.jsonl"
    log = AuditLog.open(path, "run-1")
    pairs = 20_000
    for i in range(pairs):
        log.task("revoke", TaskResult(Task("app1", "na", f"key-{i:06d}-abcdef"), Outcome.REVOKED))
    log.close()
    tracemalloc.start()
    try:
        done = load_done(path)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(done) == pairs
    # A 128-bit int and its set slot, not a tuple of three strings and a dict slot.
    assert held / pairs < 200


def test_resume_skips_a_deeply_nested_line_like_a_torn_one(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    good = task_record("revoke", result(Outcome.REVOKED), "r", False)
    path.write_text("[" * 100_000 + "]" * 100_000 + "\n" + json.dumps(good) + "\n")
    assert load_done(path) == {done_digest("app1", "eu", key_id(TASK.key))}


def test_a_line_cut_short_by_a_full_disk_is_undone_so_the_next_line_is_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "audit.jsonl"
    audit = AuditLog.open(path, "run-1")
    audit.task("revoke", result(Outcome.REVOKED))
    real_write = os.write
    calls = iter(["short", "full"])

    def full_disk(fd: int, data: bytes) -> int:
        step = next(calls, None)
        if step == "short":
            return real_write(fd, bytes(data)[:40])
        if step == "full":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(AuditWriteError):
        audit.task("revoke", result(Outcome.REVOKED))
    audit.task("revoke", result(Outcome.ABSENT, 404))  # room again
    audit.close()
    stats = ReadStats()
    outcomes = [r["outcome"] for r in iter_records(path, stats)]
    assert outcomes == ["revoked", "absent"]
    assert stats.torn == 0, "no half line left for the next one to be glued to"


@pytest.mark.parametrize(
    "ns",
    [
        1_764_780_606_123_456_789,  # 2025-12-03T16:50:06.123
        1_764_780_606_999_999_999,  # the last nanosecond of a second
        1_764_780_607_000_000_000,  # the next second: its text made again
        1_764_780_607_000_999_999,
        946_684_799_999_000_000,  # 1999-12-31T23:59:59.999
        4_102_444_800_000_000_000,  # 2100-01-01
    ],
)
def test_line_timestamps_are_written_as_isoformat_writes_them(
    ns: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(time, "time_ns", lambda: ns)
    when = datetime.fromtimestamp(ns // 10**9, UTC).replace(microsecond=ns // 1000 % 10**6)
    expected = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert now_rfc3339() == expected
    assert now_rfc3339() == expected  # the second's text, kept


def test_lines_are_written_as_json_dumps_writes_them_non_ascii_kept(tmp_path: Path) -> None:
    # A reader (jq, a SIEM) sees the same bytes whichever encoder path wrote them.
    audit = AuditLog.open(tmp_path / "audit.jsonl", "run-1")
    record = {
        "event": "note",
        "text": 'ü "quoted"\n\u2028 tab\t \x00 😀',
        "nested": {"list": [1, 1.5, None, True, -(10**30)], "empty": {}},
        "nan": float("nan"),
    }
    audit.write(record)
    audit.close()
    line = (tmp_path / "audit.jsonl").read_bytes().rstrip(b"\n")
    expected = {**record, "prev": "0" * 64}
    assert line == json.dumps(expected, ensure_ascii=False, separators=(",", ":")).encode()


def test_a_record_json_cannot_write_is_refused_not_written_partly(tmp_path: Path) -> None:
    # A key json.dumps refuses is refused here too (never silently skipped).
    audit = AuditLog.open(tmp_path / "audit.jsonl", "run-1")
    with pytest.raises(TypeError):
        audit.write({"event": "note", ("not", "a", "str"): 1})
    audit.close()
    assert b"note" not in (tmp_path / "audit.jsonl").read_bytes()
