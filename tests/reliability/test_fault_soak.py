"""Fault soak: 2,000 pairs against an emulator that fails half of all requests.

The emulator answers 30% of requests with a 5xx, drops 10% of connections, answers
10% with 429 (``Retry-After: 1``) and adds 20 ms to every request. Every fault is
drawn per attempt, so an attempt fails with probability 0.5. With
``--max-attempts 40`` the chance that any of the 2,000 tasks runs out of attempts
is at most 2000 * 0.5**40, about 2e-9: "all revoked" is a property, not luck.

The run goes through the engine's entry points (what the CLI calls) with a
short retry backoff passed in: with the production backoff (full jitter, a
capped exponential) the few tasks that need 10+ attempts would dominate the
soak. Only the sleep lengths differ; every retry decision is the production
one, and ``Retry-After`` is still honoured in full.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from revoker.emulator.process import EmulatorProcess
from revoker.engine.run import execute, prepare, revoke_passes
from revoker.engine.sched.retry import Backoff, RetryPolicy
from revoker.models import key_id
from revoker.settings import ClientSettings, InputSettings, RetrySettings, RunSettings

from .helpers import (
    APP,
    attempt_ids,
    make_keys,
    pair,
    pairs_of,
    read_audit,
    read_journal,
    task_records,
    write_keys_csv,
)

PAIRS = 2000
MAX_ATTEMPTS = 40


@pytest.mark.slow
@pytest.mark.integration
def test_soak_every_pair_revoked_once_and_every_request_id_matches_the_journal(
    tmp_path: Path,
) -> None:
    keys = make_keys(PAIRS // 4)
    keys_csv = write_keys_csv(tmp_path / "keys.csv", keys)
    journal = tmp_path / "journal.jsonl"
    audit = tmp_path / "audit.jsonl"

    emulator = EmulatorProcess(
        "--seed-keys", str(keys_csv), "--journal", str(journal),
        "--error-rate", "0.3", "--reset-rate", "0.1", "--throttle-rate", "0.1",
        "--latency-ms", "20", "--delete-rps", "0", "--seed", "6",
    )  # fmt: skip
    with emulator:
        settings = RunSettings(
            inputs=InputSettings(sources=(str(keys_csv),)),
            client=ClientSettings(base_url=emulator.base_url, timeout=10, concurrency=64),
            retry=RetrySettings(max_attempts=MAX_ATTEMPTS),
            max_rps=0,
            audit_log=audit,
        )
        plan = prepare(settings)
        report = execute(
            "revoke",
            settings,
            plan,
            emulator.credentials,
            revoke_passes(settings, plan),
            install_signal_handlers=False,
            retry=RetryPolicy(MAX_ATTEMPTS, Backoff(0.01, 0.25)),
        )
        left = emulator.state()["keys"]

    assert report.exit_code == 0, report.to_dict()
    revoked = report.pass_for("revoke")
    assert revoked is not None
    assert revoked.counts == {"revoked": PAIRS}
    assert left == []

    read = read_audit(audit)
    assert read.bad_lines == []
    records = task_records(read.records)
    assert len(records) == PAIRS
    assert Counter(pair(r) for r in records) == Counter(pairs_of(keys))
    assert {r["outcome"] for r in records} == {"revoked"}

    entries = read_journal(journal)
    assert all(e["method"] == "DELETE" for e in entries)
    faults = Counter(e["fault"] for e in entries)
    # The faults really happened, at about the configured rates.
    assert faults["reset"] > 0.05 * len(entries)
    assert faults["error"] > 0.2 * len(entries)
    assert faults["throttle"] > 0.05 * len(entries)

    by_id = {e["request_id"]: e for e in entries}
    assert len(by_id) == len(entries), "a request ID was sent twice"
    sent = attempt_ids(records)
    assert len(set(sent)) == len(sent)
    assert set(sent) == set(by_id), "audit attempts and journal differ"
    for record in records:
        for attempt in record["attempts"]:
            entry = by_id[attempt["request_id"]]
            assert (entry["app_id"], entry["region"], key_id(entry["key"])) == pair(record)
            if entry["status"] is None:  # the emulator dropped the connection
                assert "error" in attempt
                assert "status" not in attempt
            else:
                assert attempt["status"] == entry["status"]
                assert attempt["server_request_id"] == entry["response_request_id"]
        assert record["attempts"][-1]["status"] == 200
        assert record["request_id"] == record["attempts"][-1]["request_id"]
    assert {r["app_id"] for r in records} == {APP}
