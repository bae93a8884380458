"""Crash and resume: SIGKILL a 4,000-pair run at a random moment, then ``--resume``.

Five trials, each on its own app ID (so one emulator serves them all) and its own
audit log. The moment of the kill is random but seeded: the run is killed once
its audit log holds a random number of task lines (0 to 3,800), plus a random
delay of up to 50 ms, so the kill lands mid-run on a slow or a fast machine.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from revoker.emulator.process import EmulatorProcess

from .helpers import (
    attempt_ids,
    count_lines,
    journal_pair,
    key_requests,
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
    wait_until_stable,
    write_keys_csv,
)

TRIALS = 5
KEYS = 1000  # x 4 regions = 4,000 pairs per trial
SEED = 20240611


@pytest.fixture(scope="module")
def crash_setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmulatorProcess, Path]]:
    """One emulator seeded with the keys of every trial (one app ID per trial)."""
    root = tmp_path_factory.mktemp("crash")
    keys = make_keys(KEYS)
    seed = root / "seed.csv"
    lines = ["stream_key,app_id"]
    for trial in range(TRIALS):
        lines += [f'"{key}",crash{trial}' for key in keys]
    seed.write_text("\n".join(lines) + "\n", encoding="utf-8")
    journal = root / "journal.jsonl"
    with EmulatorProcess(
        "--seed-keys", str(seed), "--journal", str(journal),
        "--latency-ms", "5", "--delete-rps", "0",
    ) as emulator:  # fmt: skip
        yield emulator, journal


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize("trial", range(TRIALS))
def test_sigkill_at_a_random_moment_then_resume_revokes_every_pair_without_resending_done_ones(
    crash_setup: tuple[EmulatorProcess, Path], tmp_path: Path, trial: int
) -> None:
    emulator, journal = crash_setup
    app = f"crash{trial}"
    rng = random.Random(SEED + trial)
    target_lines = rng.randrange(0, 3800)
    extra_delay = rng.uniform(0, 0.05)
    keys = make_keys(KEYS)
    keys_csv = write_keys_csv(tmp_path / "keys.csv", keys, app)
    audit = tmp_path / "audit.jsonl"
    env = revoker_env(emulator.client_env())
    args = ["-q", "revoke", str(keys_csv), "--audit-log", str(audit), "--max-rps", "0"]

    proc = subprocess.Popen(
        revoker_cmd(*args),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(
            lambda: (
                count_lines(audit, b'"event":"revoke"') >= target_lines or proc.poll() is not None
            ),
            timeout=240,  # generous: a loaded 2-core machine writes them slowly
            what=f"{target_lines} task lines",
        )
        time.sleep(extra_delay)
        assert proc.poll() is None, "the run ended before the kill: nothing was tested"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    # Every line but possibly a torn last one parses.
    after_kill = read_audit(audit)
    assert set(after_kill.bad_lines) <= {after_kill.line_count}
    done_before = {p for p, o in latest_outcomes(after_kill.records).items() if o in DONE}
    assert len(done_before) < 4000

    # Requests the killed process had in flight may still reach the journal: settle.
    offset = wait_until_stable(journal)

    resumed = run_revoker(*args, "--resume", "--output", "json", env=env, timeout=120)
    # A key whose every DELETE the killed run sent and got answered, but never recorded,
    # is found nowhere by the resumed run: "not found", never guessed to be revoked,
    # with the unfinished run named among the causes.
    summary = json.loads(resumed.stdout)
    nowhere = {k["key_id"] for k in summary["keys"]["not_found_keys"]}
    with journal.open("rb") as handle:
        killed = read_journal_text(handle.read(offset).decode("utf-8"))
    deleted_unrecorded = {
        str(kid)
        for (journal_app, _, kid) in (journal_pair(e) for e in killed if e["status"] == 200)
        if journal_app == app
    } - {kid for _, _, kid in done_before}
    assert nowhere <= deleted_unrecorded
    assert resumed.returncode == (1 if nowhere else 0), resumed.stderr[-2000:]
    if nowhere:
        assert any("never finished" in c for c in summary["keys"]["not_found_causes"])

    # The hash chain survives the kill: the resumed run chained on from the last whole line.
    head = summary["audit_head"]
    checked = run_revoker(
        "report", "--verify", str(audit), "--expect-head", head, env=env, timeout=60
    )
    assert checked.returncode == (1 if nowhere else 0), checked.stderr[-2000:]

    final = read_audit(audit)
    # At most the one torn line from the kill, at the point the kill left it.
    assert set(final.bad_lines) <= {after_kill.line_count}
    latest = latest_outcomes(final.records)
    assert set(latest) == pairs_of(keys, app)
    assert set(latest.values()) <= DONE

    with journal.open("rb") as handle:
        handle.seek(offset)
        tail = handle.read().decode("utf-8")
    resume_entries = [
        e for e in read_journal_text(tail) if e["app_id"] == app and e["method"] == "DELETE"
    ]
    resent = {journal_pair(e) for e in resume_entries} & done_before
    assert resent == set(), f"{len(resent)} pairs already done were sent again"
    resume_run = {r["run_id"] for r in final.records if r.get("event") == "run_started"}
    assert len(resume_run) == 2
    resume_records = [r for r in task_records(final.records) if r not in after_kill.records]
    assert {e["request_id"] for e in resume_entries} == set(attempt_ids(resume_records))

    # The server accepted exactly one successful DELETE per pair over the two runs.
    entries = [e for e in key_requests(read_journal(journal)) if e["app_id"] == app]
    accepted = Counter(journal_pair(e) for e in entries if e["status"] == 200)
    assert set(accepted) == pairs_of(keys, app)
    assert set(accepted.values()) == {1}
    left = [k for k in emulator.state()["keys"] if k["app_id"] == app]
    assert left == []


DONE = {"revoked", "absent"}


def read_journal_text(text: str) -> list[dict[str, object]]:
    import json

    return [json.loads(line) for line in text.splitlines() if line.strip()]
