"""SIGINT, SIGTERM and SIGHUP: exit 130, in-flight requests finish and are recorded, the
tasks never started are one compact ``not_started`` line (``not_attempted`` by count),
``report`` counts every pair, and ``--resume`` completes the job without resending done
pairs."""

from __future__ import annotations

import json
import signal
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from revoker.emulator.process import EmulatorProcess

from .helpers import (
    APP,
    attempt_ids,
    count_lines,
    journal_pair,
    key_requests,
    latest_outcomes,
    make_keys,
    pair,
    pairs_of,
    read_audit,
    read_journal,
    revoker_cmd,
    revoker_env,
    run_revoker,
    task_records,
    wait_for,
    write_keys_csv,
)

CONCURRENCY = 8


@pytest.mark.integration
@pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["SIGINT", "SIGTERM", "SIGHUP"]
)
def test_signal_finishes_in_flight_records_the_rest_not_attempted_and_resume_completes(
    tmp_path: Path, sig: signal.Signals
) -> None:
    keys = make_keys(100)  # 400 pairs; 300 ms each, 8 at a time: about 15 s if not stopped
    keys_csv = write_keys_csv(tmp_path / "keys.csv", keys)
    journal = tmp_path / "journal.jsonl"
    audit = tmp_path / "audit.jsonl"
    with EmulatorProcess(
        "--seed-keys", str(keys_csv), "--journal", str(journal),
        "--latency-ms", "300", "--delete-rps", "0",
    ) as emulator:  # fmt: skip
        env = revoker_env(emulator.client_env())
        args = ["revoke", str(keys_csv), "--audit-log", str(audit), "--max-rps", "0"]
        proc = subprocess.Popen(
            revoker_cmd(*args, "--concurrency", str(CONCURRENCY), "--output", "json"),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            # Signal mid-run: some tasks recorded, CONCURRENCY requests in flight.
            wait_for(lambda: count_lines(audit, b'"event":"revoke"') >= 12, 30, "12 task lines")
            proc.send_signal(sig)
            stdout, stderr = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 130, stderr[-2000:]
        summary = json.loads(stdout)
        assert summary["halt_reason"] == "interrupted"

        read = read_audit(audit)
        assert read.bad_lines == []
        records = task_records(read.records)
        assert Counter(pair(r) for r in records) <= Counter(pairs_of(keys))  # each at most once
        # The tasks never started: one line with their count per region, not one each.
        [not_started] = task_records(read.records, "not_started")
        assert not_started["for_event"] == "revoke"
        assert not_started["outcome"] == "not_attempted"
        assert not_started["message"] == "interrupted"
        assert len(records) + not_started["tasks"] == 400
        assert not_started["tasks"] >= 300
        assert len(read.records) < 100
        outcomes = Counter(r["outcome"] for r in records)
        assert set(outcomes) <= {"revoked", "not_attempted"}
        assert all(r["attempts"] == [] for r in records if r["outcome"] == "not_attempted")
        finished = read.records[-1]
        assert finished["event"] == "run_finished"
        assert finished["exit_code"] == 130

        # Everything the server received was answered, and recorded as revoked: the
        # requests in flight at the signal finished instead of being dropped.
        entries = key_requests(read_journal(journal))
        revoked = [r for r in records if r["outcome"] == "revoked"]
        assert {e["request_id"] for e in entries} == set(attempt_ids(revoked))
        assert all(e["status"] == 200 for e in entries)
        in_flight_after_signal = len(revoked) - 12
        assert in_flight_after_signal >= 1

        # report accounts for every pair: the never-started ones are not done.
        stopped = _report(audit, env)
        assert stopped["exit_code"] == 1
        assert stopped["tasks"] == 400
        assert stopped["counts"]["revoke"]["total"] == {
            "revoked": len(revoked),
            "not_attempted": 400 - len(revoked),
        }

        before = len(read_journal(journal))
        resumed = run_revoker(*args, "--resume", "--concurrency", "64", env=env, timeout=60)
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        resent = {journal_pair(e) for e in read_journal(journal)[before:]} & {
            pair(r) for r in revoked
        }
        assert resent == set()
        assert set(latest_outcomes(read_audit(audit).records).values()) == {"revoked"}
        assert emulator.state()["keys"] == []
        done = _report(audit, env)
        assert done["exit_code"] == 0
        assert done["counts"]["revoke"]["total"] == {"revoked": 400}
    assert all(r.get("app_id") == APP for r in records)


def _report(audit: Path, env: dict[str, str]) -> dict[str, Any]:
    result = run_revoker("report", str(audit), "--format", "json", env=env)
    parsed: dict[str, Any] = json.loads(result.stdout)
    assert result.returncode == parsed["exit_code"], result.stderr[-2000:]
    return parsed
