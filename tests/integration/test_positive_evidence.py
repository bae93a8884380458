"""A leak is closed only on positive evidence: "not found" is never "revoked".

The real CLI against the real emulator over loopback, for every input that
names no real key (a mistyped app ID, a key missing a character, a subset of
regions) and every way the docs allow an unknown app ID to be answered.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from revoker.emulator.process import EmulatorProcess
from revoker.models import key_hint

pytestmark = pytest.mark.integration

APP = "9d2498880e934632b38b0a68fa2f1622"
TYPO_APP = "9d2498880e934632b38b0a68fa2f1623"
KEYS = [f"leakedKey{i:02d}-AbCdEfGhIjKl" for i in range(6)]


def seed(tmp_path: Path, keys: list[str], app: str = APP) -> Path:
    path = tmp_path / "seed.csv"
    path.write_text("stream_key,app_id\n" + "".join(f"{k},{app}\n" for k in keys))
    return path


def key_file(tmp_path: Path, keys: list[str], name: str = "leaked.txt") -> Path:
    path = tmp_path / name
    path.write_text("".join(f"{k}\n" for k in keys))
    return path


def run(
    emu: EmulatorProcess,
    tmp_path: Path,
    *args: str,
    command: str = "revoke",
    audit: str = "audit.jsonl",
    output: str = "json",
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AGORA_", "REVOKER_"))}
    environment.update(emu.client_env())
    environment.update(env or {})
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "revoker",
            "--log-format",
            "json",
            command,
            "--audit-log",
            str(tmp_path / audit),
            "--output",
            output,
            *args,
        ],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )


def audit_records(tmp_path: Path, name: str = "audit.jsonl") -> list[dict[str, Any]]:
    return [json.loads(line) for line in (tmp_path / name).read_text().splitlines()]


def deletes_sent(emu: EmulatorProcess) -> int:
    return int(emu.stats()["by_method"].get("DELETE", 0))


@pytest.fixture
def emu(tmp_path: Path) -> Any:
    with EmulatorProcess("--seed-keys", str(seed(tmp_path, KEYS))) as emulator:
        yield emulator


def test_a_mistyped_app_id_ends_not_found_exit_1_with_the_app_id_named(
    emu: EmulatorProcess, tmp_path: Path
) -> None:
    keys = key_file(tmp_path, KEYS[:3])
    result = run(emu, tmp_path, str(keys), "--app-id", TYPO_APP, "--verify")
    assert result.returncode == 1, result.stderr
    summary = json.loads(result.stdout)
    assert summary["keys"]["not_found"] == 3
    assert summary["keys"]["revoked"] == 0
    assert summary["keys"]["apps_not_found"] == [{"app_id": TYPO_APP, "keys": 3}]
    assert "NOT FOUND" in summary["verdict"]
    assert not summary["verdict"].startswith("every key")
    # The real keys are still there: nothing claimed them revoked.
    assert len(emu.state()["keys"]) == len(KEYS) * 4


def test_the_text_summary_lists_not_found_keys_their_causes_and_the_likely_app_id(
    emu: EmulatorProcess, tmp_path: Path
) -> None:
    keys = key_file(tmp_path, KEYS[:2])
    result = run(emu, tmp_path, str(keys), "--app-id", TYPO_APP, output="text")
    assert result.returncode == 1
    out = result.stdout
    assert "every key revoked" not in out
    assert "not found: 2 of 2 keys" in out
    for shown in (key_hint(KEYS[0]), key_hint(KEYS[1]), "a typo", "another app ID"):
        assert shown in out
    assert "redacted or truncated" in out
    assert f"app ID {TYPO_APP}: none of its 2 keys was found" in out
    assert "--absent-ok" in out


def test_a_key_missing_a_character_is_not_found_while_the_others_are_revoked(
    emu: EmulatorProcess, tmp_path: Path
) -> None:
    truncated = KEYS[1][:-1]
    keys = key_file(tmp_path, [KEYS[0], truncated])
    result = run(emu, tmp_path, str(keys), "--app-id", APP)
    assert result.returncode == 1
    summary = json.loads(result.stdout)
    assert summary["keys"]["revoked"] == 1
    assert [k["key_hint"] for k in summary["keys"]["not_found_keys"]] == [key_hint(truncated)]
    assert summary["keys"]["apps_not_found"] == []  # one key of the app was found


def test_a_rerun_with_the_same_audit_log_is_revoked_a_fresh_log_is_not_found_unless_absent_ok(
    emu: EmulatorProcess, tmp_path: Path
) -> None:
    keys = key_file(tmp_path, KEYS[2:4])
    assert run(emu, tmp_path, str(keys), "--app-id", APP).returncode == 0
    again = run(emu, tmp_path, str(keys), "--app-id", APP)
    assert again.returncode == 0, again.stdout
    assert json.loads(again.stdout)["keys"]["revoked"] == 2
    fresh = run(emu, tmp_path, str(keys), "--app-id", APP, audit="fresh.jsonl")
    assert fresh.returncode == 1
    assert json.loads(fresh.stdout)["keys"]["not_found"] == 2
    accepted = run(emu, tmp_path, str(keys), "--app-id", APP, "--absent-ok", audit="ok.jsonl")
    assert accepted.returncode == 0
    assert "not found (2 accepted with --absent-ok)" in json.loads(accepted.stdout)["verdict"]


@pytest.mark.parametrize(
    ("how", "args", "env"),
    [
        ("environment", (), {"AGORA_REGIONS": "na"}),
        ("option", ("--regions", "na,eu"), {}),
    ],
)
def test_a_subset_of_regions_is_named_in_the_verdict_never_every_region(
    emu: EmulatorProcess, tmp_path: Path, how: str, args: tuple[str, ...], env: dict[str, str]
) -> None:
    keys = key_file(tmp_path, KEYS[4:5])
    result = run(emu, tmp_path, str(keys), "--app-id", APP, *args, output="text", env=env)
    assert result.returncode == 0, result.stdout
    verdict = result.stdout.splitlines()[0]
    assert "every region" not in verdict
    if how == "environment":
        assert "in na (eu, ap and cn not touched: --regions / AGORA_REGIONS)" in verdict
    else:
        assert "in na, eu (ap and cn not touched: --regions / AGORA_REGIONS)" in verdict


def test_every_listing_before_the_first_delete_is_recorded_with_its_request_id(
    emu: EmulatorProcess, tmp_path: Path
) -> None:
    keys = key_file(tmp_path, KEYS[5:6])
    assert run(emu, tmp_path, str(keys), "--app-id", APP).returncode == 0
    records = audit_records(tmp_path)
    events = [r["event"] for r in records]
    listings = [r for r in records if r["event"] == "listing"]
    assert sorted(r["region"] for r in listings) == ["ap", "cn", "eu", "na"]
    assert all(r["outcome"] == "listed" and r["request_id"] for r in listings)
    assert all(r["server_request_id"] == r["request_id"] for r in listings)
    assert events.index("revoke") > max(i for i, e in enumerate(events) if e == "listing")


def test_live_streams_of_the_leaked_keys_are_counted_without_disconnect(tmp_path: Path) -> None:
    streams = tmp_path / "streams.csv"
    streams.write_text(
        "sid,region,app_id,stream_key,channel,uid,protocol\n"
        f"S1,na,{APP},{KEYS[0]},room,1,rtmp\n"
        f"S2,eu,{APP},{KEYS[0]},room,1,srt\n"
        f"S3,na,{APP},someone-elses-key-000,other,2,rtmp\n"
    )
    with EmulatorProcess(
        "--seed-keys", str(seed(tmp_path, KEYS)), "--live-streams", str(streams)
    ) as emu:
        keys = key_file(tmp_path, KEYS[:1])
        result = run(emu, tmp_path, str(keys), "--app-id", APP, output="text")
    assert result.returncode == 0, result.stdout
    assert "2 live streams were running with these keys" in result.stdout
    assert "add --disconnect" in result.stdout


@pytest.mark.parametrize("answer", ["400", "403"])
def test_an_app_the_listing_refuses_has_its_pairs_failed_without_any_delete(
    tmp_path: Path, answer: str
) -> None:
    with EmulatorProcess("--seed-keys", str(seed(tmp_path, KEYS)), "--unknown-app", answer) as emu:
        keys = key_file(tmp_path, KEYS[:2])
        result = run(emu, tmp_path, str(keys), "--app-id", TYPO_APP)
        assert deletes_sent(emu) == 0
    assert result.returncode == 1
    summary = json.loads(result.stdout)
    assert summary["revoke"]["counts"] == {
        "absent": 0,
        "failed": 8,
        "not_attempted": 0,
        "revoked": 0,
    }
    message = summary["revoke"]["failures"][0]["message"]
    assert message.startswith(f"not sent: listing live streams of app {TYPO_APP}")
    assert "Invalid app ID." in message if answer == "400" else "not enabled" in message


def test_an_app_answered_404_everywhere_is_not_found_with_the_app_id_named(
    tmp_path: Path,
) -> None:
    with EmulatorProcess("--seed-keys", str(seed(tmp_path, KEYS)), "--unknown-app", "404") as emu:
        keys = key_file(tmp_path, KEYS[:2])
        result = run(emu, tmp_path, str(keys), "--app-id", TYPO_APP)
    assert result.returncode == 1
    summary = json.loads(result.stdout)
    assert summary["keys"]["not_found"] == 2
    assert summary["keys"]["apps_not_found"] == [{"app_id": TYPO_APP, "keys": 2}]
    listings = [r for r in audit_records(tmp_path) if r["event"] == "listing"]
    assert {r["http_status"] for r in listings} == {404}


def test_rejected_credentials_at_the_listing_stop_the_run_before_any_delete(
    emu: EmulatorProcess, tmp_path: Path
) -> None:
    keys = key_file(tmp_path, KEYS[:2])
    wrong = {"AGORA_CUSTOMER_SECRET": "not-the-secret"}
    result = run(emu, tmp_path, str(keys), "--app-id", APP, env=wrong)
    assert result.returncode == 3
    assert deletes_sent(emu) == 0
    records = audit_records(tmp_path)
    assert not [r for r in records if r["event"] == "revoke"]
    (not_started,) = [r for r in records if r["event"] == "not_started"]
    assert not_started["tasks"] == 8
    resumed = run(emu, tmp_path, str(keys), "--app-id", APP, "--resume")
    assert resumed.returncode == 0, resumed.stdout
    assert json.loads(resumed.stdout)["keys"]["revoked"] == 2


def test_rotate_of_a_key_found_nowhere_is_not_rotated(emu: EmulatorProcess, tmp_path: Path) -> None:
    keys = key_file(tmp_path, ["neverStoredAnywhere-123"])
    result = run(
        emu,
        tmp_path,
        str(keys),
        "--app-id",
        APP,
        "--new-keys-file",
        str(tmp_path / "new.csv"),
        command="rotate",
        output="text",
    )
    assert result.returncode == 1
    assert "rotated" not in result.stdout.splitlines()[0]
    assert "NOT FOUND" in result.stdout.splitlines()[0]


def test_report_carries_the_not_found_verdict_in_every_format(
    emu: EmulatorProcess, tmp_path: Path
) -> None:
    keys = key_file(tmp_path, [*KEYS[:1], "typoKeyNotThere-0001"])
    assert run(emu, tmp_path, str(keys), "--app-id", APP).returncode == 1
    log = str(tmp_path / "audit.jsonl")

    def report(fmt: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "revoker", "report", log, "--format", fmt],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    text, data, markdown, junit = (report(f) for f in ("text", "json", "markdown", "junit"))
    assert {r.returncode for r in (text, data, markdown, junit)} == {1}
    assert "1 of 2 keys NOT FOUND in any region" in text.stdout
    assert json.loads(data.stdout)["keys"]["not_found"] == 1
    assert "### Not found in any region (1 keys, NOT revoked)" in markdown.stdout
    assert 'type="not_found"' in junit.stdout
    assert 'failures="1"' in junit.stdout.split("\n")[1]


def test_verify_points_out_an_app_id_none_of_whose_keys_exists(
    emu: EmulatorProcess, tmp_path: Path
) -> None:
    keys = key_file(tmp_path, KEYS[:2])
    result = run(emu, tmp_path, str(keys), "--app-id", TYPO_APP, command="verify", output="text")
    assert result.returncode == 0  # absent is what verify checks for
    assert f"app ID {TYPO_APP}: none of its 2 keys was found" in result.stdout
