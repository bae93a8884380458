"""Inputs that name no key are refused before anything is sent, on the emulator.

Each test is one way a real leak reaches revoker in a form that is not the key
(a redacted or truncated scanner report, another service's secret, a whole
regex match, a file edited mid-run); the real CLI runs against the emulator
over loopback, and its request counters prove what was sent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from revoker.emulator.process import EmulatorProcess
from revoker.models import REGIONS, key_hint
from tests.engine.input.test_scanners import AGORA_RULE, gitleaks_finding, trufflehog_line
from tests.integration.test_revoke_emulator import APP, lines, revoker, seed

pytestmark = pytest.mark.integration

KEYS = ["oltr0Q_3jC2Z8EM7KgFaCY2FI9flNPho", "5cQoz4humh8VbkmXkSIkovJ3AL-bFDi3"]
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def sent(emu: EmulatorProcess) -> int:
    """API requests the emulator answered (the admin routes are not counted)."""
    return int(emu.stats()["total"])


def left(emu: EmulatorProcess) -> set[str]:
    return {k["key"] for k in emu.state()["keys"]}


def gitleaks_report(tmp_path: Path, findings: list[dict[str, Any]]) -> Path:
    path = tmp_path / "gitleaks.json"
    path.write_text(json.dumps(findings, indent=1))
    return path


def redacted(secret: str, percent: int) -> dict[str, Any]:
    """A finding as ``gitleaks --redact=percent`` writes it (report/finding.go's Redact)."""
    finding = gitleaks_finding(secret)
    masked = "REDACTED" if percent >= 100 else secret[: round(len(secret) * (100 - percent) / 100)]
    masked += "" if percent >= 100 else "..."
    finding["Match"] = finding["Match"].replace(secret, masked)
    finding["Secret"] = masked
    return finding


@pytest.fixture
def emu(tmp_path: Path) -> Any:
    with EmulatorProcess("--seed-keys", str(seed(tmp_path, KEYS))) as emulator:
        yield emulator


@pytest.mark.parametrize("percent", [100, 20])
def test_a_gitleaks_report_written_with_redact_is_refused_whole_and_nothing_is_sent(
    emu: EmulatorProcess, tmp_path: Path, percent: int
) -> None:
    report = gitleaks_report(tmp_path, [redacted(k, percent) for k in KEYS])
    for extra in ((), ("--skip-invalid",)):
        result = revoker(
            emu, tmp_path, "--from", "gitleaks", str(report), "--rule", AGORA_RULE,
            "--app-id", APP, *extra,
        )  # fmt: skip
        assert result.returncode == 2, result.stdout + result.stderr
        assert (
            f"{report}:1: this report was written with --redact: the secrets are not in it"
            in result.stderr
        )
    assert sent(emu) == 0
    assert left(emu) == set(KEYS)


def test_from_without_rule_is_refused_and_another_services_secret_is_never_sent(
    emu: EmulatorProcess, tmp_path: Path
) -> None:
    report = gitleaks_report(
        tmp_path, [gitleaks_finding(KEYS[0]), gitleaks_finding(AWS_SECRET, rule="aws-access-token")]
    )
    result = revoker(emu, tmp_path, "--from", "gitleaks", str(report), "--app-id", APP)
    assert result.returncode == 2
    assert "--from without --rule would send every finding" in result.stderr
    assert "--all-findings" in result.stderr
    assert sent(emu) == 0
    assert not (tmp_path / "audit.jsonl").exists()


def test_trufflehog_custom_detector_findings_are_selected_by_the_detectors_own_name(
    emu: EmulatorProcess, tmp_path: Path
) -> None:
    report = tmp_path / "trufflehog.jsonl"
    report.write_text(
        trufflehog_line(KEYS[0]) + "\n" + trufflehog_line(AWS_SECRET, builtin="AWS") + "\n"
    )
    result = revoker(
        emu, tmp_path, "--from", "trufflehog", str(report), "--rule", AGORA_RULE, "--app-id", APP
    )
    assert result.returncode == 0, result.stderr
    assert left(emu) == {KEYS[1]}
    paths = {r["key_id"] for r in lines(tmp_path)}
    assert len(paths) == 1
    assert AWS_SECRET not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("raw", "shape"),
    [
        (f"rtmp://rtls-ingress-prod-na.agoramdn.com/live/{KEYS[0]}", "a URL (rtmp://...)"),
        (f"STREAM_KEY={KEYS[0]}", "a NAME=VALUE assignment (STREAM_KEY=...)"),
    ],
)
def test_a_trufflehog_raw_holding_the_whole_match_is_refused_naming_the_key_in_it(
    emu: EmulatorProcess, tmp_path: Path, raw: str, shape: str
) -> None:
    # TruffleHog before 3.88 reported a custom detector's whole regex match as Raw.
    report = tmp_path / "trufflehog.jsonl"
    report.write_text(trufflehog_line(raw) + "\n")
    result = revoker(
        emu, tmp_path, "--from", "trufflehog", str(report), "--rule", AGORA_RULE, "--app-id", APP
    )
    assert result.returncode == 2
    assert f"{report}:1: {shape}, not a stream key" in result.stderr
    assert key_hint(KEYS[0]) in result.stderr
    assert KEYS[0] not in result.stdout + result.stderr
    assert sent(emu) == 0


def test_a_key_file_edited_during_the_run_exits_1_naming_the_line_and_sends_not_that_row(
    tmp_path: Path,
) -> None:
    keys = tmp_path / "leaked.txt"
    keys.write_text("".join(f"{k}\n" for k in KEYS))
    replacement = KEYS[1][::-1]  # same length: a count cannot see it
    # Slow listings hold the run between validation and its first DELETE.
    args = ("--latency-ms", "3000", "--fault-method", "GET", "--seed-keys")
    with EmulatorProcess(*args, str(seed(tmp_path, [*KEYS, replacement]))) as emu:
        environment = {
            k: v for k, v in os.environ.items() if not k.startswith(("AGORA_", "REVOKER_"))
        }
        environment.update(emu.client_env())
        audit = tmp_path / "audit.jsonl"
        command = [sys.executable, "-m", "revoker", "revoke", "--audit-log", str(audit)]
        process = subprocess.Popen(
            [*command, "--app-id", APP, str(keys)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
        )
        deadline = time.monotonic() + 60
        while not (audit.exists() and audit.read_text()) and time.monotonic() < deadline:
            time.sleep(0.01)  # polled: the run_started line is written before the listings
        keys.write_text(f"{KEYS[0]}\n{replacement}\n")
        stdout, stderr = process.communicate(timeout=120)
        assert process.returncode == 1, stdout + stderr
        assert f"were NOT sent: {keys}:2" in stdout
        assert left(emu) == {KEYS[1], replacement}
    assert {r["region"] for r in lines(tmp_path)} == set(REGIONS)
    assert len(lines(tmp_path)) == 4
