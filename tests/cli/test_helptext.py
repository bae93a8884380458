"""--help people can read: option groups, examples, help that says what the command
does, --format/--output aliases, file completion of KEYS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import respx
from click.testing import CliRunner

from revoker.cli import main
from tests.conftest import APP, BASE, api_not_found

REVOKER = str(Path(sys.executable).parent / "revoker")
RUN_COMMANDS = ["revoke", "verify", "prune", "rotate"]


def help_of(*command: str) -> str:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0, result.output
    return result.output


def option_help(text: str, option: str) -> str:
    """The help of one option, joined onto one line (click wraps it)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(option))
    block = [lines[start]]
    for line in lines[start + 1 :]:
        if not line.startswith("    ") or line.strip().startswith("--"):
            break
        block.append(line)
    return " ".join(" ".join(block).split())


@pytest.mark.parametrize("command", RUN_COMMANDS)
def test_run_commands_list_their_options_in_groups(command: str) -> None:
    text = help_of(command)
    headings = [line for line in text.splitlines() if line and not line.startswith(" ")]
    for group in ("Input:", "Target:", "Pacing and retries:", "Audit:", "Output:"):
        assert group in headings, text
    # The audit options sit under Audit, not in one flat list.
    audit = text[text.index("Audit:") : text.index("Output:")]
    assert "--audit-log" in audit
    assert "--resume" in audit


@pytest.mark.parametrize("command", [*RUN_COMMANDS, "show", "streams", "report", "keygen"])
def test_every_option_sits_in_a_named_group_only_help_is_left_under_options(
    command: str,
) -> None:
    text = help_of(command)
    lines = text[text.index("Options:") :].splitlines()[1:] if "Options:" in text else []
    section = []
    for line in lines:
        if line and not line.startswith(" "):
            break
        section.append(line)
    options = [line.split()[0] for line in section if line.strip().startswith("-")]
    assert options == ["-h,"], text


@pytest.mark.parametrize("command", [*RUN_COMMANDS, "show", "streams", "report", "keygen"])
def test_every_command_ends_with_examples(command: str) -> None:
    text = help_of(command)
    examples = text[text.index("Examples:") :].splitlines()[1:]
    commands = [line.strip() for line in examples if line.strip().startswith("revoker ")]
    assert len(commands) >= 1 if command == "keygen" else len(commands) >= 2
    assert all(line.startswith(f"revoker {command}") for line in commands)


def test_prune_dry_run_help_says_the_gets_are_sent() -> None:
    dry_run = option_help(help_of("prune"), "--dry-run")
    assert "send nothing" not in dry_run
    assert "Send the GETs" in dry_run
    assert "delete nothing" in dry_run


def test_revoke_dry_run_help_still_says_nothing_is_sent() -> None:
    assert "send nothing" in option_help(help_of("revoke"), "--dry-run")


def test_verify_delay_help_names_its_range_as_disconnect_timeout_does() -> None:
    text = help_of("revoke")
    assert "0 to 3600" in option_help(text, "--verify-delay SECONDS")
    assert "0<=x<=3600" in option_help(text, "--disconnect-timeout")


def test_verify_resume_help_says_it_skips_nothing() -> None:
    text = option_help(help_of("verify"), "--resume")
    assert "skips nothing" in text
    assert "already done" not in text


@pytest.mark.usefixtures("creds")
def test_verify_resume_checks_every_pair_again_as_its_help_says(
    tmp_path: Path, api: respx.MockRouter
) -> None:
    route = api.get(url__regex=".*").mock(side_effect=api_not_found)
    args = ["verify", "--base-url", BASE, "--audit-log", str(tmp_path / "audit.jsonl"),
            "--key", "key-one-000001", "--app-id", APP, "--max-rps", "0"]  # fmt: skip
    first = CliRunner().invoke(main, ["--log-format", "json", *args])
    assert first.exit_code == 0, first.output
    assert route.call_count == 4
    second = CliRunner().invoke(main, ["--log-format", "json", *args, "--resume"])
    assert second.exit_code == 0, second.output
    assert route.call_count == 8


def test_format_is_an_alias_of_output_on_run_commands(tmp_path: Path) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text("key-one-000001\n")
    result = CliRunner().invoke(
        main, ["revoke", str(keys), "--app-id", APP, "--dry-run", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["plan"]["tasks"] == 4


def test_output_is_an_alias_of_format_on_report(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    started = {"event": "run_started", "ts": "2026-12-03T10:00:00Z", "run_id": "r1"}
    log.write_text(json.dumps({**started, "command": "revoke"}) + "\n")
    result = CliRunner().invoke(main, ["report", str(log), "--output", "json"])
    assert result.exit_code != 2, result.output  # accepted (1: a run that never finished)
    assert isinstance(json.loads(result.stdout), dict)


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_keys_complete_as_file_names(shell: str) -> None:
    env = {
        **os.environ,
        "_REVOKER_COMPLETE": f"{shell}_complete",
        "COMP_WORDS": "revoker revoke ",
        "COMP_CWORD": "2",
    }
    result = subprocess.run(
        [REVOKER], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0].startswith("file"), result.stdout


def test_dry_run_says_how_long_the_real_run_takes_at_the_cap(tmp_path: Path) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text("".join(f"key-{i:010d}\n" for i in range(1000)))
    result = CliRunner().invoke(main, ["revoke", str(keys), "--app-id", APP, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert (
        "at the cap (50 DELETE/s per app ID) the real run takes about 1 min 20 s: "
        f"4000 DELETEs for app ID {APP}"
    ) in result.stdout
