"""revoke --from gitleaks --rule: exactly that rule's secrets, in every region, on the emulator."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from revoker.emulator.process import EmulatorProcess
from tests.engine.input.test_scanners import gitleaks_finding
from tests.integration.test_revoke_emulator import APP, lines, revoker, seed

pytestmark = pytest.mark.integration


def test_revoke_from_gitleaks_with_rule_revokes_exactly_that_rules_secrets(
    tmp_path: Path,
) -> None:
    agora = ["leaked-agora-0001-xyz", "leaked-agora-0002-xyz"]
    other = ["not-ours-aws-0001-xyz"]
    report = tmp_path / "gitleaks.json"
    report.write_text(
        json.dumps(
            [
                gitleaks_finding(agora[0]),
                gitleaks_finding(other[0], rule="aws-access-token"),
                gitleaks_finding(agora[1]),
                gitleaks_finding(agora[0]),  # the same secret found in a second file
            ]
        )
    )
    with EmulatorProcess("--seed-keys", str(seed(tmp_path, agora + other))) as emu:
        result = revoker(
            emu, tmp_path, "--from", "gitleaks", str(report), "--rule", "agora-stream-key",
            "--app-id", APP,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        left = {(k["key"], k["region"]) for k in emu.state()["keys"]}
    assert left == {(other[0], region) for region in ("na", "eu", "ap", "cn")}
    revoked = Counter(r["key_id"] for r in lines(tmp_path) if r["outcome"] == "revoked")
    assert len(revoked) == 2
    assert set(revoked.values()) == {4}
    assert agora[0] not in result.stdout + result.stderr
