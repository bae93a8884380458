"""The audit log's hash chain: what the writer chains, and what report --verify catches."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from click.testing import CliRunner, Result

from revoker.audit.chain import GENESIS
from revoker.audit.log import AuditLog
from revoker.audit.signing import Signer, generate, load_signer
from revoker.cli import main
from revoker.models import Attempt, Outcome, Task, TaskResult
from tests.conftest import APP, BASE


def sha(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


def write_run(
    path: Path,
    run_id: str,
    tasks: int = 4,
    *,
    signer: Signer | None = None,
    finish: bool = True,
    resume: bool = False,
) -> AuditLog:
    """One run through the real writer: run_started, ``tasks`` revoke lines, run_finished."""
    log = AuditLog.open(path, run_id, signer=signer)
    log.run_started("revoke", {"resume": resume}, {"tasks": tasks})
    for i in range(tasks):
        task = Task(APP, ("na", "eu", "ap", "cn")[i % 4], f"stream-key-{i:04d}-abcdef")
        log.task("revoke", TaskResult(task, Outcome.REVOKED, [Attempt(f"rid-{i}", "h", 200)]))
    if finish:
        log.run_finished(command="revoke", exit_code=0, halt_reason=None)
    log.close()
    return log


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


def put(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def rechain(lines: list[bytes]) -> list[bytes]:
    """What a forger with a text editor and sha256sum can do: recompute every prev."""
    head, out = GENESIS, []
    for line in lines:
        record = json.loads(line)
        record["prev"] = head
        encoded = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()
        out.append(encoded)
        head = sha(encoded)
    return out


def report(*args: str) -> Result:
    return CliRunner().invoke(main, ["report", *args])


def verify(*args: str | Path) -> Result:
    return report("--verify", *map(str, args))


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Strictly increasing timestamps: a resumed run starts after the one it resumes."""
    ticks = itertools.count()
    monkeypatch.setattr(
        "revoker.audit.log.now_rfc3339", lambda: f"2026-01-01T00:00:{next(ticks):02d}.000Z"
    )


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "audit.jsonl"
    write_run(path, "run-1")
    return path


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    private = tmp_path / "signing.pem"
    return private, generate(private)


def test_every_line_chains_to_the_whole_previous_line_from_the_genesis_value(log: Path) -> None:
    lines = lines_of(log)
    records = [json.loads(line) for line in lines]
    assert records[0]["prev"] == GENESIS == "0" * 64
    for before, record in zip(lines, records[1:], strict=False):
        assert record["prev"] == sha(before)
    assert records[-1]["event"] == "run_finished"
    assert records[-1]["lines"] == len(lines) == 6


def test_an_intact_log_verifies_and_prints_its_head(log: Path) -> None:
    result = verify(log)
    assert result.exit_code == 0, result.stderr
    assert f"{log}: chained, head {sha(lines_of(log)[-1])}" in result.stderr
    assert verify(log, "--expect-head", sha(lines_of(log)[-1])).exit_code == 0


@pytest.mark.parametrize("fmt", ["text", "json", "markdown", "junit"])
def test_a_changed_field_is_exit_4_at_the_next_line_in_every_format(log: Path, fmt: str) -> None:
    lines = lines_of(log)
    lines[2] = lines[2].replace(b'"outcome":"revoked"', b'"outcome":"absent"')
    put(log, lines)
    result = verify(log, "--format", fmt)
    assert result.exit_code == 4
    assert f"{log}:4: prev does not match the hash of line 3" in result.stderr
    if fmt == "text":
        # The usual report comes first (the edited key now reads as found nowhere).
        assert "1 of 4 keys NOT FOUND in any region" in result.stdout


def test_a_changed_run_finished_is_caught_by_expect_head_and_by_the_signature(
    tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    path = tmp_path / "audit.jsonl"
    write_run(path, "run-1", signer=load_signer(keys[0]))
    head = sha(lines_of(path)[-1])
    lines = lines_of(path)
    lines[-1] = lines[-1].replace(b'"exit_code":0', b'"exit_code":1')
    put(path, lines)
    assert verify(path).exit_code == 0, "a last line alone has nothing after it to break"
    result = verify(path, "--expect-head", head)
    assert result.exit_code == 4
    assert f"{path}:6: the log ends at head" in result.stderr
    result = verify(path, "--public-key", keys[1])
    assert result.exit_code == 4
    assert f"{path}:6: run run-1: bad signature" in result.stderr


def test_a_deleted_line_is_exit_4(log: Path) -> None:
    lines = lines_of(log)
    del lines[2]
    put(log, lines)
    result = verify(log)
    assert result.exit_code == 4
    assert f"{log}:3: prev does not match the hash of line 2: that line was edited" in result.stderr


def test_two_swapped_lines_are_exit_4(log: Path) -> None:
    lines = lines_of(log)
    lines[2], lines[3] = lines[3], lines[2]
    put(log, lines)
    result = verify(log)
    assert result.exit_code == 4
    assert f"{log}:3: prev does not match" in result.stderr


def test_a_duplicated_line_is_exit_4(log: Path) -> None:
    lines = lines_of(log)
    lines.insert(3, lines[2])
    put(log, lines)
    result = verify(log)
    assert result.exit_code == 4
    assert f"{log}:4: prev does not match the hash of line 3 but of line 2" in result.stderr


def test_a_forged_line_with_a_recomputed_chain_is_caught_by_expect_head_and_the_signature(
    tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    path = tmp_path / "audit.jsonl"
    write_run(path, "run-1", signer=load_signer(keys[0]))
    head = sha(lines_of(path)[-1])
    lines = lines_of(path)
    forged = json.loads(lines[1])
    forged.update(region="cn", key_hint="forg...ed")
    lines.insert(2, json.dumps(forged).encode())
    finished = json.loads(lines[-1])
    finished["lines"] += 1  # the forger fixes the count too
    lines[-1] = json.dumps(finished).encode()
    put(path, rechain(lines))
    assert verify(path).exit_code == 0, "a recomputed chain is consistent on its own"
    result = verify(path, "--expect-head", head)
    assert result.exit_code == 4
    assert "the log ends at head" in result.stderr
    result = verify(path, "--public-key", keys[1])
    assert result.exit_code == 4
    assert f"{path}:7: run run-1: bad signature" in result.stderr


def test_a_tail_cut_before_run_finished_is_caught_by_expect_head_and_the_signature(
    tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    path = tmp_path / "audit.jsonl"
    write_run(path, "run-1", signer=load_signer(keys[0]))
    head = sha(lines_of(path)[-1])
    put(path, lines_of(path)[:-2])
    result = verify(path)
    assert result.exit_code == 1, "like a crash: the report says the run never finished"
    assert "never finished" in result.stdout
    result = verify(path, "--expect-head", head)
    assert result.exit_code == 4
    assert f"{path}:4: the log ends at head" in result.stderr
    result = verify(path, "--public-key", keys[1])
    assert result.exit_code == 4
    assert f"{path}:4: not covered by a signature" in result.stderr


def test_a_torn_line_then_a_resumed_run_verifies_with_a_note(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_run(path, "run-1", finish=False)
    last_whole = lines_of(path)[-1]
    with path.open("ab") as handle:
        handle.write(last_whole[: len(last_whole) // 2])  # killed mid-write
    write_run(path, "run-2", resume=True)
    lines = lines_of(path)
    assert json.loads(lines[6])["prev"] == sha(last_whole), "chains on from the last whole line"
    result = verify(path, "--expect-head", sha(lines[-1]))
    assert result.exit_code == 0, result.stderr
    assert f"note: {path}:6: torn line skipped" in result.stderr


def test_a_second_resumed_run_after_an_unterminated_torn_line_still_chains(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.jsonl"
    write_run(path, "run-1", finish=False)
    with path.open("ab") as handle:
        handle.write(b'{"event":"revoke","ts":"2026')
    AuditLog.open(path, "run-2").close()  # opened (torn line ended), killed before a write
    write_run(path, "run-3", resume=True)
    assert verify(path).exit_code == 0


def test_logs_written_before_chaining_are_unchained_and_fail_only_with_require_chain(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.jsonl"
    write_run(path, "run-1")
    put(path, [_without_prev(line) for line in lines_of(path)])
    result = verify(path)
    assert result.exit_code == 0
    assert f"{path}: unchained" in result.stderr
    result = verify(path, "--require-chain")
    assert result.exit_code == 4
    assert f"{path}: unchained" in result.stderr


def test_stripping_every_prev_and_signature_does_not_pass_a_public_key_check(
    tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    path = tmp_path / "audit.jsonl"
    write_run(path, "run-1", signer=load_signer(keys[0]))
    put(path, [_without_prev(line) for line in lines_of(path)])
    result = verify(path, "--public-key", keys[1])
    assert result.exit_code == 4
    assert f"{path}:6: not covered by a signature" in result.stderr


def test_a_run_appended_to_an_old_log_chains_on_from_its_last_line(tmp_path: Path) -> None:
    path = tmp_path / "old.jsonl"
    write_run(path, "run-1")
    old = [_without_prev(line) for line in lines_of(path)]
    put(path, old)
    write_run(path, "run-2")
    assert json.loads(lines_of(path)[len(old)])["prev"] == sha(old[-1])
    result = verify(path)
    assert result.exit_code == 0
    assert "partly unchained" in result.stderr
    assert verify(path, "--require-chain").exit_code == 4


def test_a_prev_removed_from_a_chained_line_is_exit_4(log: Path) -> None:
    lines = lines_of(log)
    lines[-1] = _without_prev(lines[-1])
    put(log, lines)
    result = verify(log)
    assert result.exit_code == 4
    assert f"{log}:6: no prev" in result.stderr


def test_shard_logs_are_verified_together_and_the_broken_one_is_named(tmp_path: Path) -> None:
    shards = [tmp_path / f"shard{i}.jsonl" for i in range(3)]
    for i, shard in enumerate(shards):
        write_run(shard, f"run-{i}")
    assert verify(*shards).exit_code == 0
    lines = lines_of(shards[1])
    del lines[1]
    put(shards[1], lines)
    result = verify(*shards)
    assert result.exit_code == 4
    assert f"{shards[1]}:2: prev does not match" in result.stderr
    assert f"{shards[0]}: chained" in result.stderr
    assert f"{shards[2]}: chained" in result.stderr


def test_signed_runs_verify_with_their_public_key_only(
    tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    path = tmp_path / "audit.jsonl"
    signer = load_signer(keys[0])
    write_run(path, "run-1", signer=signer)
    write_run(path, "run-2", signer=signer)
    result = verify(path, "--public-key", keys[1])
    assert result.exit_code == 0, result.stderr
    assert "2 signed runs" in result.stderr
    other = generate(tmp_path / "other.pem")
    result = verify(path, "--public-key", other)
    assert result.exit_code == 4
    assert f"{path}:6: run run-1: bad signature" in result.stderr


def test_an_unsigned_run_fails_when_a_public_key_is_given(
    tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    path = tmp_path / "audit.jsonl"
    write_run(path, "run-1", signer=load_signer(keys[0]))
    write_run(path, "run-2")
    result = verify(path, "--public-key", keys[1])
    assert result.exit_code == 4
    assert f"{path}:12: run run-2 is not signed" in result.stderr


def test_expect_head_needs_exactly_one_log_and_the_flags_need_verify(log: Path) -> None:
    result = verify(log, log, "--expect-head", GENESIS)
    assert result.exit_code == 2
    assert "exactly one" in result.stderr
    result = report(str(log), "--require-chain")
    assert result.exit_code == 2
    assert "need --verify" in result.stderr


def test_the_summary_shows_the_head_of_the_log_it_wrote(
    tmp_path: Path, api: respx.MockRouter, creds: None
) -> None:
    api.delete(url__regex=".*").mock(return_value=httpx.Response(200, json={"status": "success"}))
    path = tmp_path / "audit.jsonl"
    args = ["revoke", "--key", "stream-key-0000-abcdef", "--app-id", APP, "--base-url", BASE]
    args += ["--audit-log", str(path), "--max-rps", "0"]
    text = CliRunner().invoke(main, args)
    assert text.exit_code == 0, text.output
    assert f"audit head {sha(lines_of(path)[-1])}" in text.stdout
    data: dict[str, Any] = json.loads(CliRunner().invoke(main, [*args, "--output", "json"]).stdout)
    lines = lines_of(path)
    assert data["audit_head"] == sha(lines[-1])
    assert json.loads(lines[-1])["lines"] == 10, "run_started, 4 listings, 4 revokes, run_finished"
    assert verify(path, "--expect-head", data["audit_head"]).exit_code == 0


def _without_prev(line: bytes) -> bytes:
    record = json.loads(line)
    for name in ("prev", "lines", "signed_by", "signature"):
        record.pop(name, None)
    return json.dumps(record, separators=(",", ":")).encode()


def test_a_cut_trailing_signed_run_is_said_unanchored_and_caught_by_expect_head(
    tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    path = tmp_path / "audit.jsonl"
    signer = load_signer(keys[0])
    write_run(path, "run-1", signer=signer)
    write_run(path, "run-2", signer=signer)  # e.g. a later verify that found keys present
    head = sha(lines_of(path)[-1])
    put(path, lines_of(path)[:6])  # the whole second run cut off
    result = verify(path, "--public-key", keys[1])
    assert result.exit_code == 0, "the signatures left are good: the cut cannot show here"
    assert f"{path}: nothing anchors the end of this log" in result.stderr
    assert "--expect-head" in result.stderr
    result = verify(path, "--public-key", keys[1], "--expect-head", head)
    assert result.exit_code == 4
    assert "nothing anchors" not in result.stderr


def test_a_trailing_run_made_all_torn_is_exit_4(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    path = tmp_path / "audit.jsonl"
    signer = load_signer(keys[0])
    write_run(path, "run-1", signer=signer)
    write_run(path, "run-2", signer=signer)
    lines = lines_of(path)
    put(path, lines[:6] + [line[:-1] for line in lines[6:]])  # every line of run-2 unreadable
    result = verify(path, "--public-key", keys[1])
    assert result.exit_code == 4
    assert f"{path}:7: torn line inside the log" in result.stderr


def test_a_garbage_line_inserted_in_the_middle_is_exit_4_not_a_note(log: Path) -> None:
    lines = lines_of(log)
    put(log, [*lines[:3], b'{"event":"revoke","outcome":"fai', *lines[3:]])
    result = verify(log)
    assert result.exit_code == 4
    assert f"{log}:4: torn line inside the log" in result.stderr


def test_a_torn_last_line_is_a_note_and_the_next_run_names_it(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_run(path, "run-1", finish=False)
    with path.open("ab") as handle:
        handle.write(b'{"event":"revoke","ts":"2026')  # killed mid-write
    result = verify(path)
    assert result.exit_code == 1, "the run never finished"
    assert f"note: {path}:6: torn last line skipped" in result.stderr
    write_run(path, "run-2", resume=True)
    first = json.loads(lines_of(path)[6])
    assert first["after_torn"] == sha(b'{"event":"revoke","ts":"2026')
    assert verify(path).exit_code == 0


@pytest.mark.parametrize("head", ["", "3f9c", "zz" * 32])
def test_an_empty_malformed_or_shortened_expect_head_is_exit_2(log: Path, head: str) -> None:
    real = sha(lines_of(log)[-1])
    value = real[:12] if head == "3f9c" else head  # a short prefix of the real head
    result = verify(log, "--expect-head", value)
    assert result.exit_code == 2, result.output
    assert "--expect-head" in result.stderr
    assert result.stdout == "", "refused before any report is printed"
    assert verify(log, "--expect-head", real.upper()).exit_code == 0
