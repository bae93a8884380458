"""``revoker report --merge-fallback``: the lines a full disk kept out, merged back chained."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from revoker.audit.log import AuditLog, save_unrecorded, task_record
from revoker.audit.signing import generate, load_signer
from revoker.cli import main
from revoker.models import Attempt, Outcome, Task, TaskResult
from tests.conftest import APP

REGIONS = ("na", "eu", "ap", "cn")


def result(i: int) -> TaskResult:
    task = Task(APP, REGIONS[i % 4], f"stream-key-{i:04d}-abcdef")
    return TaskResult(task, Outcome.REVOKED, [Attempt(f"rid-{i}", "h", 200)])


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(main, ["report", *map(str, args)])


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    private = tmp_path / "signing.pem"
    return private, generate(private)


@pytest.fixture
def full_disk_run(tmp_path: Path, keys: tuple[Path, Path]) -> tuple[Path, Path]:
    """A signed run of 8 tasks whose last 3 lines the disk refused: saved to a fallback
    file, as revoker does."""
    log = tmp_path / "audit.jsonl"
    audit = AuditLog.open(log, "run-1", signer=load_signer(keys[0]))
    audit.run_started("revoke", {"resume": False}, {"tasks": 8})
    for i in range(5):
        audit.task("revoke", result(i))
    audit.run_finished(command="revoke", exit_code=1, halt_reason="audit_write_failed")
    audit.close()
    unrecorded = [task_record("revoke", result(i), "run-1", False) for i in range(5, 8)]
    saved = save_unrecorded(log, "run-1", unrecorded)
    assert saved is not None
    return log, saved


def test_merged_fallback_lines_chain_sign_and_complete_the_run(
    full_disk_run: tuple[Path, Path], keys: tuple[Path, Path]
) -> None:
    log, saved = full_disk_run
    before = invoke(log)
    assert before.exit_code == 1
    assert "INCOMPLETE" in before.stdout
    merged = invoke("--merge-fallback", saved, "--sign-key", keys[0], log)
    assert merged.exit_code == 0, merged.output
    assert f"merged 3 lines of {saved} into {log}" in merged.stderr
    assert "all 8 tasks done" in merged.stdout
    checked = invoke("--verify", log, "--public-key", keys[1])
    assert checked.exit_code == 0, checked.stderr
    assert "2 signed runs" in checked.stderr
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["run_id"] for r in records if r["event"] == "revoke"] == ["run-1"] * 8


def test_the_fallback_appended_by_hand_breaks_the_chain_merging_it_does_not(
    full_disk_run: tuple[Path, Path],
) -> None:
    log, saved = full_disk_run
    pristine = log.read_bytes()
    log.write_bytes(pristine + saved.read_bytes())  # the old advice
    assert invoke("--verify", log).exit_code == 4
    log.write_bytes(pristine)
    assert invoke("--merge-fallback", saved, "--verify", log).exit_code == 0


def test_a_fallback_merged_twice_or_not_an_audit_file_is_exit_2_and_appends_nothing(
    full_disk_run: tuple[Path, Path], tmp_path: Path
) -> None:
    log, saved = full_disk_run
    assert invoke("--merge-fallback", saved, log).exit_code == 0
    once = log.read_bytes()
    again = invoke("--merge-fallback", saved, log)
    assert again.exit_code == 2
    assert "already merged" in again.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text(saved.read_text() + "not json\n")
    refused = invoke("--merge-fallback", bad, log)
    assert refused.exit_code == 2
    assert f"{bad}:4: not a JSON audit line" in refused.stderr
    assert "Traceback" not in refused.output
    assert invoke("--merge-fallback", log, log).exit_code == 2
    assert log.read_bytes() == once
