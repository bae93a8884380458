"""Hostile files and streams: JSON nested 100,000 deep, a lone surrogate in a log, a full
stdout. Each is a clear error or escaped text, never a traceback."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.reliability.helpers import revoker_cmd, revoker_env, run_revoker, write_keys_csv

DEEP = "[" * 100_000 + "]" * 100_000
ENV = revoker_env({"AGORA_CUSTOMER_ID": "cid", "AGORA_CUSTOMER_SECRET": "s3cret-value"})
CLOSED = "http://127.0.0.1:9"  # nothing listens: every attempt fails at once, locally


def _log(tmp_path: Path) -> Path:
    """A real audit log: one key, four failed pairs."""
    keys = write_keys_csv(tmp_path / "keys.csv", ["plain-stream-key-0001"])
    log = tmp_path / "audit.jsonl"
    result = run_revoker(
        "revoke", str(keys), "--base-url", CLOSED, "--max-attempts", "1", "--audit-log",
        str(log), env=ENV,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    return log


def _no_crash(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr
    assert "RecursionError" not in result.stderr


def test_verifying_a_log_with_a_deeply_nested_line_does_not_crash(tmp_path: Path) -> None:
    log = _log(tmp_path)
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join(lines[:3]) + DEEP + "\n" + "".join(lines[3:]))
    result = run_revoker("report", "--verify", str(log), env=ENV)
    _no_crash(result)
    assert f"{log}:4:" in result.stderr


def test_appending_to_a_log_whose_last_line_is_nested_too_deep_is_a_usage_error(
    tmp_path: Path,
) -> None:
    log = _log(tmp_path)
    with log.open("a") as handle:
        handle.write(DEEP + "\n")
    before = log.read_bytes()
    keys = write_keys_csv(tmp_path / "keys.csv", ["plain-stream-key-0001"])
    result = run_revoker(
        "revoke", str(keys), "--base-url", CLOSED, "--audit-log", str(log), env=ENV
    )
    _no_crash(result)
    assert result.returncode == 2, result.stderr
    assert f"{log}: its last line is JSON nested too deep" in result.stderr
    assert log.read_bytes() == before


@pytest.mark.parametrize(
    ("scanner", "text", "line"),
    [
        ("gitleaks", '[\n{"Secret": "k-0001-abcdef", "RuleID": "agora"},\n' + DEEP + "\n]", 3),
        ("trufflehog", '{"Raw": "k-0001-abcdef", "DetectorName": "Agora"}\n' + DEEP + "\n", 2),
    ],
)
def test_a_scanner_report_nested_too_deep_names_its_file_and_line(
    tmp_path: Path, scanner: str, text: str, line: int
) -> None:
    report = tmp_path / "report.json"
    report.write_text(text)
    result = run_revoker(
        "revoke", str(report), "--from", scanner, "--all-findings", "--app-id", "app1",
        "--base-url", CLOSED,
        "--audit-log", str(tmp_path / "a.jsonl"), env=ENV,
    )  # fmt: skip
    _no_crash(result)
    assert result.returncode == 2, result.stderr
    assert f"{report}:{line}: not a" in result.stderr
    assert "nested too deep" in result.stderr
    assert not (tmp_path / "a.jsonl").exists()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("args", [["--help"], ["revoke", "--help"], ["--version"]])
def test_help_to_a_full_device_is_an_error_message_not_a_traceback(args: list[str]) -> None:
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            revoker_cmd(*args), env=ENV, stdout=full, stderr=subprocess.PIPE, text=True,
            timeout=30, check=False,
        )  # fmt: skip
    _no_crash(result)
    assert result.returncode == 2
    assert "cannot write to stdout (No space left on device)" in result.stderr


@pytest.mark.parametrize("fmt", ["markdown", "text", "json", "junit"])
def test_a_lone_surrogate_in_a_log_is_shown_escaped_in_every_report_format(
    tmp_path: Path, fmt: str
) -> None:
    log = _log(tmp_path)
    text = log.read_text()
    log.write_text(text.replace('"region":"na"', '"region":"n\\ud800a"'))
    result = run_revoker("report", "--format", fmt, str(log), env=ENV)
    _no_crash(result)
    assert result.returncode == 1, result.stderr
    assert "\ud800" not in result.stdout
