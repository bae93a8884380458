"""revoke --verify: each pair's GET runs --verify-delay after its DELETE, alongside the
other DELETEs; the real CLI against the emulator over loopback."""

from __future__ import annotations

import json
import signal
import subprocess
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from revoker.emulator.process import EmulatorProcess
from tests.reliability.helpers import (
    APP,
    count_lines,
    journal_pair,
    key_requests,
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

pytestmark = pytest.mark.integration


def when(entry: dict[str, Any]) -> float:
    return datetime.fromisoformat(entry["ts"]).timestamp()


def test_verify_gets_run_among_the_deletes_each_no_sooner_than_the_delay_after_it(
    tmp_path: Path,
) -> None:
    keys = make_keys(75)  # 300 pairs, paced at ~100/s: about 3 s of DELETEs
    keys_csv = write_keys_csv(tmp_path / "keys.csv", keys)
    journal = tmp_path / "journal.jsonl"
    audit = tmp_path / "audit.jsonl"
    with EmulatorProcess(
        "--seed-keys", str(keys_csv), "--journal", str(journal),
        "--delete-rps", "0", "--get-rps", "0",
    ) as emulator:  # fmt: skip
        result = run_revoker(
            "revoke", str(keys_csv), "--audit-log", str(audit), "--output", "json",
            "--max-rps", "100", "--verify", "--verify-delay", "0.5",
            env=revoker_env(emulator.client_env()), timeout=60,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout)
    assert summary["revoke"]["counts"] == {
        "absent": 0,
        "failed": 0,
        "not_attempted": 0,
        "revoked": 300,
    }
    assert summary["verify"]["counts"] == {
        "absent": 300,
        "failed": 0,
        "not_attempted": 0,
        "present": 0,
    }
    records = read_audit(audit).records
    assert Counter(pair(r) for r in task_records(records, "verify")) == Counter(pairs_of(keys))

    entries = key_requests(read_journal(journal))
    deletes = {journal_pair(e): when(e) for e in entries if e["method"] == "DELETE"}
    gets = {journal_pair(e): when(e) for e in entries if e["method"] == "GET"}
    assert set(gets) == set(deletes) == pairs_of(keys)
    assert min(gets.values()) < max(deletes.values()), "verify GETs interleave with DELETEs"
    # The journal's timestamps are truncated to the millisecond.
    too_soon = {p: gets[p] - deletes[p] for p in gets if gets[p] - deletes[p] < 0.5 - 0.002}
    assert too_soon == {}


def test_pairs_done_in_an_earlier_run_are_verified_too_at_once_on_resume(tmp_path: Path) -> None:
    keys = make_keys(10)
    keys_csv = write_keys_csv(tmp_path / "keys.csv", keys)
    first_csv = write_keys_csv(tmp_path / "first.csv", keys[:4])
    journal = tmp_path / "journal.jsonl"
    audit = tmp_path / "audit.jsonl"
    with EmulatorProcess(
        "--seed-keys", str(keys_csv), "--journal", str(journal)
    ) as emulator:  # fmt: skip
        env = revoker_env(emulator.client_env())
        first = run_revoker("revoke", str(first_csv), "--audit-log", str(audit), env=env)
        assert first.returncode == 0, first.stderr[-2000:]
        before = len(read_journal(journal))
        result = run_revoker(
            "revoke", str(keys_csv), "--audit-log", str(audit), "--output", "json",
            "--resume", "--verify", "--verify-delay", "1", env=env, timeout=60,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout)
    assert summary["revoke"]["counts"] == {
        "absent": 0,
        "failed": 0,
        "not_attempted": 0,
        "revoked": 24,
    }
    assert summary["verify"]["counts"] == {
        "absent": 40,
        "failed": 0,
        "not_attempted": 0,
        "present": 0,
    }
    resent = key_requests(read_journal(journal)[before:])
    deleted = {journal_pair(e) for e in resent if e["method"] == "DELETE"}
    verified = Counter(journal_pair(e) for e in resent if e["method"] == "GET")
    assert deleted == pairs_of(keys[4:])
    assert verified == Counter(pairs_of(keys))
    earlier = [when(e) for e in resent if e["method"] == "GET" and journal_pair(e) not in deleted]
    now = [when(e) for e in resent if e["method"] == "GET" and journal_pair(e) in deleted]
    assert max(earlier) < min(now), "earlier pairs are checked at once, not after the delay"


def test_sigint_with_verify_accounts_for_every_pair_once_per_event(
    tmp_path: Path,
) -> None:
    keys = make_keys(100)  # 400 pairs at 300 ms each, 8 at a time: ~15 s if not stopped
    keys_csv = write_keys_csv(tmp_path / "keys.csv", keys)
    audit = tmp_path / "audit.jsonl"
    with EmulatorProcess(
        "--seed-keys", str(keys_csv), "--latency-ms", "300", "--delete-rps", "0",
        "--get-rps", "0",
    ) as emulator:  # fmt: skip
        proc = subprocess.Popen(
            revoker_cmd(
                "revoke", str(keys_csv), "--audit-log", str(audit), "--max-rps", "0",
                "--concurrency", "8", "--output", "json", "--verify", "--verify-delay", "0.1",
            ),
            env=revoker_env(emulator.client_env()),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            wait_for(lambda: count_lines(audit, b'"event":"verify"') >= 8, 30, "8 verify lines")
            proc.send_signal(signal.SIGINT)
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
    all_pairs = Counter(pairs_of(keys))
    for event in ("revoke", "verify"):
        # A pair has at most one line; the pairs never started are counted in one
        # not_started line, so lines plus that count make the whole plan.
        lines = task_records(read.records, event)
        seen = Counter(pair(r) for r in lines)
        assert max(seen.values()) == 1, event
        assert set(seen) <= set(all_pairs), event
        assert all(r["app_id"] == APP for r in lines)
        not_started = [
            r for r in read.records if r["event"] == "not_started" and r["for_event"] == event
        ]
        assert len(lines) + sum(r["tasks"] for r in not_started) == sum(all_pairs.values()), event
    verified = Counter(r["outcome"] for r in task_records(read.records, "verify"))
    assert set(verified) == {"absent", "not_attempted"}
    assert verified["absent"] >= 8
    revoked = {pair(r) for r in task_records(read.records) if r["outcome"] == "revoked"}
    absent = {pair(r) for r in task_records(read.records, "verify") if r["outcome"] == "absent"}
    assert absent <= revoked, "only pairs whose DELETE was sent are found absent"
    assert read.records[-1]["event"] == "run_finished"
    assert read.records[-1]["exit_code"] == 130
