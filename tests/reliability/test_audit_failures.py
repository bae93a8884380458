"""The audit log cannot be lost silently.

- It cannot be opened or written at start: exit 2 and not one request sent.
- A write fails mid-run (disk full): no new request is sent, exit 1, and every
  task that completed without its line is printed (all of them, at any
  concurrency) and saved to a 0600 file named on stderr. Every request the
  server saw is either in the audit log or in that printed list.
"""

from __future__ import annotations

import errno
import json
import os
import re
import resource
import signal
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import revoker.audit.log
from revoker.cli import main
from revoker.emulator.process import EmulatorProcess

from .helpers import (
    attempt_ids,
    key_requests,
    make_keys,
    read_audit,
    read_journal,
    revoker_cmd,
    revoker_env,
    run_revoker,
    task_records,
    write_keys_csv,
)

CONCURRENCY = 8


@pytest.fixture(scope="module")
def emulator_journal(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[EmulatorProcess, Path]]:
    root = tmp_path_factory.mktemp("audit-failures")
    keys_csv = write_keys_csv(root / "seed.csv", make_keys(200))
    journal = root / "journal.jsonl"
    with EmulatorProcess(
        "--seed-keys", str(keys_csv), "--journal", str(journal),
        "--latency-ms", "20", "--delete-rps", "0",
    ) as emulator:  # fmt: skip
        yield emulator, journal


def _journal_size(journal: Path) -> int:
    return len(read_journal(journal))


@pytest.mark.integration
@pytest.mark.parametrize("where", ["missing-directory", "a-directory", "dev-full"])
def test_audit_log_that_cannot_be_created_or_written_at_start_exits_2_before_any_request(
    emulator_journal: tuple[EmulatorProcess, Path], tmp_path: Path, where: str
) -> None:
    emulator, journal = emulator_journal
    audit = {
        "missing-directory": tmp_path / "no" / "such" / "dir" / "audit.jsonl",
        "a-directory": tmp_path,
        "dev-full": Path("/dev/full"),  # opens fine, every write fails with ENOSPC
    }[where]
    if where == "dev-full" and not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    keys_csv = write_keys_csv(tmp_path / "keys.csv", make_keys(20))
    before = _journal_size(journal)
    result = run_revoker(
        "revoke", str(keys_csv), "--audit-log", str(audit), "--max-rps", "0",
        env=revoker_env(emulator.client_env()),
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert f"revoker: error: {audit}" in result.stderr
    assert "audit" in result.stderr
    assert "Traceback" not in result.stderr
    assert _journal_size(journal) == before  # nothing was sent


class _DiskFillsUp:
    """Stands in for ``os`` inside revoker.audit.log: ``write`` fails with ENOSPC after N calls."""

    def __init__(self, allowed_writes: int) -> None:
        self.allowed = allowed_writes
        self.calls = 0

    def write(self, fd: int, data: bytes) -> int:
        self.calls += 1
        if self.calls > self.allowed:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return os.write(fd, data)

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)


def _check_nothing_lost(
    journal_entries: list[dict[str, Any]], records: list[dict[str, Any]], summary: dict[str, Any]
) -> None:
    """Every request the server saw is in the audit log or in the printed unrecorded list."""
    unrecorded = summary["unrecorded"]
    assert unrecorded, "the summary must list the tasks that went unrecorded"
    printed = {rid for task in unrecorded for rid in task["request_ids"]}
    logged = set(attempt_ids(records))
    seen = {e["request_id"] for e in key_requests(journal_entries)}
    assert seen <= logged | printed, f"{len(seen - logged - printed)} requests without a record"
    assert not logged & printed
    # No new request after the failure: at most the ones already in flight.
    assert len(seen) <= len(records) + CONCURRENCY
    assert len(unrecorded) <= CONCURRENCY


@pytest.mark.integration
def test_audit_write_failing_mid_run_stops_sending_exits_1_and_prints_unrecorded_tasks(
    emulator_journal: tuple[EmulatorProcess, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emulator, journal = emulator_journal
    keys = make_keys(200)  # 800 pairs; the disk fills after 1 + 4 listings + 50 lines
    keys_csv = write_keys_csv(tmp_path / "keys.csv", keys)
    audit = tmp_path / "audit.jsonl"
    monkeypatch.setattr(revoker.audit.log, "os", _DiskFillsUp(allowed_writes=55))
    for name in ("AGORA_APP_ID", "AGORA_REGIONS", "AGORA_FALLBACK_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    before = _journal_size(journal)
    result = CliRunner().invoke(
        main,
        [
            "revoke",
            str(keys_csv),
            "--audit-log",
            str(audit),
            "--max-rps",
            "0",
            "--concurrency",
            str(CONCURRENCY),
            "--output",
            "json",
        ],
        env=emulator.client_env(),
    )
    assert result.exit_code == 1, result.output
    assert "could not be written to the audit log" in result.stderr
    summary = json.loads(result.stdout)
    assert summary["halt_reason"] == "audit_write_failed"
    read = read_audit(audit)
    assert read.bad_lines == []
    records = task_records(read.records)
    assert len(records) == 50
    entries = read_journal(journal)[before:]
    assert len(entries) < 800
    _check_nothing_lost(entries, records, summary)


def _limit_file_size(limit: int) -> None:  # runs in the child before exec
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.mark.integration
def test_audit_log_hitting_the_file_size_limit_in_a_real_process_loses_no_revocation(
    emulator_journal: tuple[EmulatorProcess, Path], tmp_path: Path
) -> None:
    emulator, journal = emulator_journal
    keys_csv = write_keys_csv(tmp_path / "keys.csv", make_keys(200, prefix="f"))
    audit = tmp_path / "audit.jsonl"
    before = _journal_size(journal)
    result = subprocess.run(
        revoker_cmd(
            "revoke",
            str(keys_csv),
            "--audit-log",
            str(audit),
            "--max-rps",
            "0",
            "--concurrency",
            str(CONCURRENCY),
            "--output",
            "json",
        ),
        env=revoker_env(emulator.client_env()),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        preexec_fn=lambda: _limit_file_size(24_000),
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert "could not be written to the audit log" in result.stderr
    summary = json.loads(result.stdout)
    assert summary["halt_reason"] == "audit_write_failed"
    assert audit.stat().st_size <= 24_000
    read = read_audit(audit)
    assert set(read.bad_lines) <= {read.line_count}  # at most the line the limit cut
    records = task_records(read.records)
    assert 0 < len(records) < 800
    entries = read_journal(journal)[before:]
    _check_nothing_lost(entries, records, summary)


class _FileSystemFills:
    """Stands in for ``os`` inside revoker.audit.log: files opened under ``folder`` take
    ``allowed_writes`` writes in all, then every write there fails with ENOSPC."""

    def __init__(self, folder: Path, allowed_writes: int) -> None:
        self.folder = str(folder)
        self.allowed = allowed_writes
        self.full_fds: set[int] = set()

    def open(self, path: Any, flags: int, mode: int = 0o777) -> int:
        fd = os.open(path, flags, mode)
        if str(path).startswith(self.folder):
            self.full_fds.add(fd)
        return fd

    def close(self, fd: int) -> None:
        self.full_fds.discard(fd)
        os.close(fd)

    def write(self, fd: int, data: bytes) -> int:
        if fd in self.full_fds:
            if self.allowed <= 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self.allowed -= 1
        return os.write(fd, data)

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)


@pytest.mark.integration
def test_full_disk_at_concurrency_200_every_sent_request_is_logged_printed_and_saved(
    emulator_journal: tuple[EmulatorProcess, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emulator, journal = emulator_journal
    keys = make_keys(200, prefix="c")  # 800 pairs, 200 in flight when the disk fills
    keys_csv = write_keys_csv(tmp_path / "keys.csv", keys)
    full, spare = tmp_path / "full", tmp_path / "tmp"
    full.mkdir()
    spare.mkdir()
    audit = full / "audit.jsonl"
    monkeypatch.setattr(revoker.audit.log, "os", _FileSystemFills(full, allowed_writes=55))
    monkeypatch.setattr(tempfile, "tempdir", str(spare))
    for name in ("AGORA_APP_ID", "AGORA_REGIONS", "AGORA_FALLBACK_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    before = _journal_size(journal)
    result = CliRunner().invoke(
        main,
        ["revoke", str(keys_csv), "--audit-log", str(audit), "--max-rps", "0",
         "--concurrency", "200"],
        env=emulator.client_env(),
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    entries = key_requests(read_journal(journal)[before:])
    sent = {e["request_id"] for e in entries}
    logged = set(attempt_ids(task_records(read_audit(audit).records)))
    # The text summary lists every unrecorded task, however many.
    printed = {
        rid for ids in re.findall(r"request_ids=(\S+)", result.stdout) for rid in ids.split(",")
    }
    assert len(sent - logged) > 50
    assert sent <= logged | printed, f"{len(sent - logged - printed)} requests lost"
    # ... and their audit lines are in a 0600 file in $TMPDIR (next to the log is full),
    # named on stderr, without any plain key.
    [saved] = spare.iterdir()
    assert str(saved) in result.stderr
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    saved_lines = [json.loads(line) for line in saved.read_text().splitlines()]
    assert sent <= logged | set(attempt_ids(saved_lines))
    assert not any(key in saved.read_text() for key in keys)
    assert list(full.iterdir()) == [audit]
    # The message says how to put them back; doing so chains them and loses nothing.
    assert f"revoker report --merge-fallback {saved} {audit}" in result.stderr
    monkeypatch.setattr(revoker.audit.log, "os", os)  # room again
    merged = CliRunner().invoke(main, ["report", "--merge-fallback", str(saved), "--verify",
                                       str(audit)])  # fmt: skip
    assert merged.exit_code != 4, merged.stderr
    assert "FAILED" not in merged.stderr
    assert sent <= set(attempt_ids(task_records(read_audit(audit).records)))
