"""examples/scanners/: the gitleaks rule and TruffleHog detector find Agora streaming
keys, and the scan-then-revoke workflow revokes what the scan found.

The workflow's scan step runs verbatim with a stand-in ``gitleaks`` on PATH (the
real one is not installed here) that writes a report as gitleaks does and exits 1
(leaks found); the revoke step is the action, run as tests/action runs it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.engine.input.test_scanners import gitleaks_finding

ROOT = Path(__file__).resolve().parents[2]
SCANNERS = ROOT / "examples" / "scanners"
APP = "app1"
KEY = "Zx3_kP9-qLm2Rt7vWb8nYc4dHf6gJs1a"  # the shape of a key the API creates

yaml = pytest.importorskip("yaml")


def gitleaks_rule() -> dict[str, Any]:
    config = tomllib.loads((SCANNERS / "gitleaks.toml").read_text(encoding="utf-8"))
    (rule,) = (r for r in config["rules"] if r["id"] == "agora-stream-key")
    return dict(rule)


def found(text: str) -> list[str]:
    rule = gitleaks_rule()
    return [m.group(rule["secretGroup"]) for m in re.finditer(rule["regex"], text)]


@pytest.mark.parametrize(
    "text",
    [
        f"rtmp://rtls-ingress-prod-na.agoramdn.com/live/{KEY}",
        f"server=rtmps://push.example.com:443/live/{KEY}\n",
        f'STREAM_KEY="{KEY}"',
        f"streamKey: {KEY}",
        f'{{"stream_key": "{KEY}"}}',
        f"agora.stream-key => '{KEY}'",
    ],
)
def test_gitleaks_rule_finds_a_key_in_a_push_url_or_a_stream_key_setting(text: str) -> None:
    assert found(text) == [KEY]


@pytest.mark.parametrize(
    "text",
    ["stream_key = short", f"api_key = {KEY}", f"https://example.com/docs/{KEY}", "live/ok"],
)
def test_gitleaks_rule_ignores_keys_without_stream_key_context(text: str) -> None:
    assert found(text) == []


def test_trufflehog_detector_uses_the_same_pattern_and_keywords_as_the_gitleaks_rule() -> None:
    config = yaml.safe_load((SCANNERS / "trufflehog.yml").read_text(encoding="utf-8"))
    (detector,) = config["detectors"]
    rule = gitleaks_rule()
    assert detector["name"] == rule["id"]
    assert list(detector["regex"].values()) == [rule["regex"]]
    assert detector["keywords"] == rule["keywords"]


@pytest.mark.integration
def test_scan_then_revoke_workflow_revokes_exactly_what_the_scan_found(tmp_path: Path) -> None:
    from revoker.emulator.process import EmulatorProcess
    from tests.action.test_action import outputs, run_action

    workflow = yaml.safe_load((SCANNERS / "scan-then-revoke.yml").read_text(encoding="utf-8"))
    (job,) = workflow["jobs"].values()
    scan, revoke = (s for s in job["steps"] if s.get("id") in ("scan", "revoke"))
    assert revoke["uses"] == "./"
    leaked = ["leaked-agora-00000001-k", "leaked-agora-00000002-k"]
    report = [gitleaks_finding(k) for k in leaked]
    report.append(gitleaks_finding("someone-elses-aws-key-01", rule="aws-access-token"))
    stand_in = tmp_path / "bin" / "gitleaks"
    stand_in.parent.mkdir()
    stand_in.write_text(
        "#!/bin/sh\n"
        'while [ "$#" -gt 0 ]; do [ "$1" = --report-path ] && out=$2; shift; done\n'
        f"cat > \"$out\" <<'JSON'\n{json.dumps(report)}\nJSON\nexit 1\n"
    )
    stand_in.chmod(0o755)
    seed = tmp_path / "seed.csv"
    seed.write_text(
        "stream_key\n" + "".join(f"{k}\n" for k in [*leaked, "someone-elses-aws-key-01"])
    )
    with EmulatorProcess("--seed-keys", str(seed), "--app-id", APP) as emu:
        env = {
            "PATH": f"{stand_in.parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": str(tmp_path),
            "GITHUB_OUTPUT": str(tmp_path / "scan-outputs.txt"),
            **emu.client_env(),
            "AGORA_APP_ID": APP,
        }
        result = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", scan["run"]],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert (tmp_path / "scan-outputs.txt").read_text() == "leaked=true\n"
        with_ = {k: str(v).lower() if isinstance(v, bool) else v for k, v in revoke["with"].items()}
        result = run_action(tmp_path, with_, env)
        assert result.returncode == 0, result.stdout + result.stderr
        left = {(k["key"], k["region"]) for k in emu.state()["keys"]}
    assert left == {("someone-elses-aws-key-01", r) for r in ("na", "eu", "ap", "cn")}
    masks = {line for line in result.stdout.splitlines() if line.startswith("::add-mask::")}
    assert masks == {f"::add-mask::{k}" for k in leaked}
    assert outputs(tmp_path)["revoked"] == "8"
