"""Fault soak: 2,000 pairs against an emulator that fails half of all requests.

The emulator answers 30% of requests with a 5xx, drops 10% of connections, answers
10% with 429 (``Retry-After: 1``) and adds 20 ms to every request. Every fault is
drawn per attempt, so an attempt fails with probability 0.5. With
``--max-attempts 40`` the chance that any of the 2,000 tasks runs out of attempts
is at most 2000 * 0.5**40, about 2e-9: "all revoked" is a property, not luck.

The run goes through the real CLI (in-process, so the retry backoff can be made
short): with the production backoff (0.5 s base, full jitter, 30 s cap) the same
soak takes about two minutes, dominated by the few tasks that need 10+ attempts.
Only the sleep lengths differ; every retry decision is the production one, and
``Retry-After`` is still honoured in full.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

import revoker.cli.options
from revoker.cli import main
from revoker.emulator.process import EmulatorProcess
from revoker.models import key_id
from revoker.settings import RetrySettings

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
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = make_keys(PAIRS // 4)
    keys_csv = write_keys_csv(tmp_path / "keys.csv", keys)
    journal = tmp_path / "journal.jsonl"
    audit = tmp_path / "audit.jsonl"
    fast = functools.partial(RetrySettings, backoff_base=0.01, backoff_max=0.25)
    monkeypatch.setattr(revoker.cli.options, "RetrySettings", fast)
    for name in ("AGORA_APP_ID", "AGORA_REGIONS", "AGORA_FALLBACK_BASE_URL"):
        monkeypatch.delenv(name, raising=False)

    emulator = EmulatorProcess(
        "--seed-keys", str(keys_csv), "--journal", str(journal),
        "--error-rate", "0.3", "--reset-rate", "0.1", "--throttle-rate", "0.1",
        "--latency-ms", "20", "--delete-rps", "0", "--seed", "6",
    )  # fmt: skip
    with emulator:
        result = CliRunner().invoke(
            main,
            [
                "--log-format",
                "json",
                "-q",
                "revoke",
                str(keys_csv),
                "--audit-log",
                str(audit),
                "--max-rps",
                "0",
                "--concurrency",
                "64",
                "--max-attempts",
                str(MAX_ATTEMPTS),
                "--timeout",
                "10",
                "--output",
                "json",
            ],
            env=emulator.client_env(),
            catch_exceptions=False,
        )
        left = emulator.state()["keys"]

    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["revoke"]["counts"] == {"revoked": PAIRS}
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
