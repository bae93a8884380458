"""A closed stderr (``revoker ... 2>&1 | head -1``, quitting ``less``) is never fatal:
logging to it falls silent, signals still stop the run gracefully, every task is
recorded, and the exit code is the one ``run_finished`` records."""

from __future__ import annotations

import os
import pty
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from revoker.emulator.process import EmulatorProcess

from .helpers import (
    attempt_ids,
    count_lines,
    key_requests,
    make_keys,
    pair,
    pairs_of,
    read_audit,
    read_journal,
    revoker_cmd,
    revoker_env,
    task_records,
    wait_for,
    write_keys_csv,
)


def _start(args: list[str], env: dict[str, str], both_on_one_pipe: bool) -> subprocess.Popen[str]:
    """revoker with stderr on a pipe whose reader goes away at once (or after one line,
    like ``2>&1 | head -1``)."""
    proc = subprocess.Popen(
        revoker_cmd(*args),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE if both_on_one_pipe else subprocess.DEVNULL,
        stderr=subprocess.STDOUT if both_on_one_pipe else subprocess.PIPE,
        text=True,
    )
    if both_on_one_pipe:
        assert proc.stdout is not None
        proc.stdout.readline()
        proc.stdout.close()
    else:
        assert proc.stderr is not None
        proc.stderr.close()
    return proc


def _wait(proc: subprocess.Popen[str]) -> int:
    try:
        return proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.integration
@pytest.mark.parametrize("both_on_one_pipe", [False, True], ids=["stderr-closed", "head-1"])
def test_sigterm_after_stderr_closed_still_stops_gracefully_and_exit_code_matches_the_log(
    tmp_path: Path, both_on_one_pipe: bool
) -> None:
    keys = make_keys(100)  # 400 pairs, 300 ms each, 8 at a time: long enough to signal
    keys_csv = write_keys_csv(tmp_path / "keys.csv", keys)
    journal = tmp_path / "journal.jsonl"
    audit = tmp_path / "audit.jsonl"
    with EmulatorProcess(
        "--seed-keys", str(keys_csv), "--journal", str(journal),
        "--latency-ms", "300", "--delete-rps", "0",
    ) as emulator:  # fmt: skip
        args = ["revoke", str(keys_csv), "--audit-log", str(audit), "--max-rps", "0",
                "--concurrency", "8"]  # fmt: skip
        proc = _start(args, revoker_env(emulator.client_env()), both_on_one_pipe)
        wait_for(lambda: count_lines(audit, b'"event":"revoke"') >= 12, 30, "12 task lines")
        proc.send_signal(signal.SIGTERM)
        code = _wait(proc)
        entries = key_requests(read_journal(journal))
    read = read_audit(audit)
    assert read.bad_lines == []
    finished = read.records[-1]
    assert finished["event"] == "run_finished"
    assert code == finished["exit_code"] == 130
    records = task_records(read.records)
    assert {e["request_id"] for e in entries} <= set(attempt_ids(records))
    assert Counter(r["outcome"] for r in records)["revoked"] == len(entries)


@pytest.mark.integration
def test_a_401_after_stderr_closed_records_every_task_and_run_finished(tmp_path: Path) -> None:
    keys = make_keys(100)
    keys_csv = write_keys_csv(tmp_path / "keys.csv", keys)
    journal = tmp_path / "journal.jsonl"
    audit = tmp_path / "audit.jsonl"
    with EmulatorProcess("--journal", str(journal), "--delete-rps", "0") as emulator:
        env = revoker_env(emulator.client_env())
        env["AGORA_CUSTOMER_SECRET"] = "not-the-secret"
        args = ["revoke", str(keys_csv), "--audit-log", str(audit), "--max-rps", "0",
                "--concurrency", "8"]  # fmt: skip
        code = _wait(_start(args, env, both_on_one_pipe=False))
        entries = read_journal(journal)
    read = read_audit(audit)
    assert read.bad_lines == []
    assert read.records[-1]["event"] == "run_finished"
    assert code == read.records[-1]["exit_code"] == 3
    records = task_records(read.records)
    # Every request (the listings the 401 stopped the run at) is in the log.
    assert {e["request_id"] for e in entries} == set(attempt_ids(read.records))
    assert {pair(r) for r in records} <= pairs_of(keys)


@pytest.mark.integration
def test_sighup_after_the_terminal_went_away_stops_gracefully_and_records_everything(
    tmp_path: Path,
) -> None:
    keys = make_keys(100)
    keys_csv = write_keys_csv(tmp_path / "keys.csv", keys)
    journal = tmp_path / "journal.jsonl"
    audit = tmp_path / "audit.jsonl"
    with EmulatorProcess(
        "--seed-keys", str(keys_csv), "--journal", str(journal),
        "--latency-ms", "300", "--delete-rps", "0",
    ) as emulator:  # fmt: skip
        args = ["revoke", str(keys_csv), "--audit-log", str(audit), "--max-rps", "0",
                "--concurrency", "8"]  # fmt: skip
        terminal, tty = pty.openpty()  # stderr is a terminal: the progress line is drawn
        proc = subprocess.Popen(
            revoker_cmd(*args),
            env=revoker_env(emulator.client_env()),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=tty,
        )
        os.close(tty)
        try:
            wait_for(lambda: count_lines(audit, b'"event":"revoke"') >= 12, 30, "12 task lines")
        finally:
            os.close(terminal)  # the terminal is gone: writing to it fails (EIO)
        proc.send_signal(signal.SIGHUP)
        code = _wait(proc)
        entries = key_requests(read_journal(journal))
    read = read_audit(audit)
    assert read.records[-1]["event"] == "run_finished"
    assert code == read.records[-1]["exit_code"] == 130
    records = task_records(read.records)
    assert {e["request_id"] for e in entries} <= set(attempt_ids(records))
