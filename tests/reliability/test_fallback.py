"""Fallback hosts: on a connect failure the request goes to ``--fallback-url`` at once,
and the audit record names the host that answered (checked against both journals)."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from revoker.emulator.process import EmulatorProcess
from revoker.settings import default_fallback

from .helpers import (
    count_lines,
    latest_outcomes,
    make_keys,
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


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound, never listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


@pytest.mark.integration
def test_primary_refusing_connections_fails_over_and_records_the_answering_host(
    tmp_path: Path, closed_port: int
) -> None:
    keys = make_keys(50)
    keys_csv = write_keys_csv(tmp_path / "keys.csv", keys)
    journal = tmp_path / "journal.jsonl"
    audit = tmp_path / "audit.jsonl"
    primary = f"http://127.0.0.1:{closed_port}"
    seed = ("--seed-keys", str(keys_csv), "--delete-rps", "0")
    with EmulatorProcess(*seed, "--journal", str(journal)) as emulator:
        env = revoker_env(emulator.client_env())
        result = run_revoker(
            "revoke", str(keys_csv), "--audit-log", str(audit), "--max-rps", "0",
            "--base-url", primary, "--fallback-url", emulator.base_url, "--max-attempts", "2",
            env=env,
        )  # fmt: skip
        left = emulator.state()["keys"]
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    assert left == []
    emulator_host = urlsplit(emulator.base_url).netloc
    every = read_audit(audit).records
    records = task_records(every)
    assert len(records) == 200
    assert {r["host"] for r in records} == {emulator_host}
    # The failed attempts on the primary are recorded too, as connection errors (on the
    # first requests: the listings before the first DELETE).
    failed = [a for r in every for a in r.get("attempts", []) if a["host"] != emulator_host]
    assert failed, "the primary was never tried"
    assert {a["host"] for a in failed} == {f"127.0.0.1:{closed_port}"}
    assert all("error" in a and "status" not in a for a in failed)
    served = {e["request_id"] for e in read_journal(journal)}
    assert {r["request_id"] for r in records} <= served


@pytest.mark.integration
@pytest.mark.slow
def test_primary_dying_mid_run_fails_over_and_each_record_names_the_host_that_answered(
    tmp_path: Path,
) -> None:
    keys = make_keys(150)  # 600 pairs, 20 ms each, 8 at a time: ~1.5 s on one host
    keys_csv = write_keys_csv(tmp_path / "keys.csv", keys)
    journals = {"a": tmp_path / "a.jsonl", "b": tmp_path / "b.jsonl"}
    audit = tmp_path / "audit.jsonl"
    common = ("--seed-keys", str(keys_csv), "--latency-ms", "20", "--delete-rps", "0")
    with (
        EmulatorProcess(*common, "--journal", str(journals["a"])) as a,
        EmulatorProcess(*common, "--journal", str(journals["b"])) as b,
    ):
        env = revoker_env(a.client_env())
        proc = subprocess.Popen(
            revoker_cmd(
                "revoke",
                str(keys_csv),
                "--audit-log",
                str(audit),
                "--max-rps",
                "0",
                "--concurrency",
                "8",
                "--base-url",
                a.base_url,
                "--fallback-url",
                b.base_url,
            ),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for(lambda: count_lines(audit, b'"event":"revoke"') >= 100, 30, "100 lines")
            a.stop()  # the primary goes away mid-run
            _stdout, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, stderr[-2000:]
    hosts = {name: urlsplit(emu.base_url).netloc for name, emu in (("a", a), ("b", b))}
    served = {
        name: {e["request_id"]: e for e in read_journal(path) if e["status"] is not None}
        for name, path in journals.items()
    }
    records = task_records(read_audit(audit).records)
    assert set(latest_outcomes(records)) == pairs_of(keys)
    assert set(latest_outcomes(records).values()) <= {"revoked", "absent"}
    by_host = dict.fromkeys(hosts, 0)
    for record in records:
        name = next(n for n, h in hosts.items() if h == record["host"])
        by_host[name] += 1
        entry = served[name].get(record["request_id"])
        assert entry is not None, f"{record['host']} is named but never saw the request"
        assert entry["status"] == record["http_status"]
    assert by_host["a"] >= 100
    assert by_host["b"] >= 1


def test_default_fallback_is_the_documented_alternate_domain_both_ways() -> None:
    assert default_fallback("https://api.agora.io") == "https://api.sd-rtn.com"
    assert default_fallback("https://api.sd-rtn.com") == "https://api.agora.io"
    assert default_fallback("https://example.test") is None
