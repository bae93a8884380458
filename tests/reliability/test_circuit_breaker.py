"""Auth circuit breaker: wrong credentials stop the run after a handful of requests."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from revoker.emulator.process import EmulatorProcess

from .helpers import (
    make_keys,
    pair,
    pairs_of,
    read_audit,
    read_journal,
    revoker_env,
    run_revoker,
    task_records,
    write_keys_csv,
)

PAIRS = 10_000
CONCURRENCY = 32


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize("auth", ["basic", "hmac"])
def test_wrong_credentials_stop_10000_pairs_after_fewer_than_two_rounds_of_requests(
    tmp_path: Path, auth: str
) -> None:
    keys = make_keys(PAIRS // 4)
    keys_csv = write_keys_csv(tmp_path / "keys.csv", keys)
    journal = tmp_path / "journal.jsonl"
    audit = tmp_path / "audit.jsonl"
    with EmulatorProcess("--journal", str(journal), "--delete-rps", "0") as emulator:
        env = revoker_env(emulator.client_env())
        env["AGORA_CUSTOMER_SECRET"] = "not-the-secret"
        result = run_revoker(
            "revoke", str(keys_csv), "--audit-log", str(audit), "--auth", auth,
            "--max-rps", "0", "--concurrency", str(CONCURRENCY), "--output", "json",
            env=env, timeout=60,
        )  # fmt: skip
    assert result.returncode == 3, result.stderr[-2000:]
    assert json.loads(result.stdout)["halt_reason"] == "auth_rejected"

    entries = read_journal(journal)
    assert 1 <= len(entries) < 2 * CONCURRENCY
    assert {e["status"] for e in entries} == {401}

    read = read_audit(audit)
    assert read.bad_lines == []
    # The 401 came back to the listings made before the first DELETE: not one DELETE
    # was sent, and every pair is one not_started line, for --resume.
    listings = task_records(read.records, "listing")
    assert all(r["http_status"] == 401 for r in listings if r["attempts"])
    assert {a["request_id"] for r in listings for a in r["attempts"]} == {
        e["request_id"] for e in entries
    }
    assert not [e for e in entries if e["method"] == "DELETE"]
    records = task_records(read.records)
    assert Counter(pair(r) for r in records) <= Counter(pairs_of(keys))  # each at most once
    [not_started] = task_records(read.records, "not_started")
    assert len(records) + not_started["tasks"] == PAIRS
    assert all(r["outcome"] == "not_attempted" and not r["attempts"] for r in records)
