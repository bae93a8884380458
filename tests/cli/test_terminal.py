"""Terminal conventions: NO_COLOR / --no-color (colour, not progress), -q, --progress,
and shell completion."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
import structlog
from click.testing import CliRunner

from revoker import logs
from revoker.cli import main
from revoker.cli.output import progress_display

REVOKER = str(Path(sys.executable).parent / "revoker")


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _colour_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setattr(logs, "_COLOR_OFF", False)


def console_line() -> str:
    stream = FakeTTY()
    logs.configure("console", stream=stream)
    structlog.get_logger().warning("run started", tasks=4)
    return stream.getvalue()


def test_console_logs_are_coloured_on_a_tty_by_default() -> None:
    assert "\x1b[" in console_line()


def test_no_color_env_turns_colour_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    line = console_line()
    assert "run started" in line
    assert "\x1b[" not in line


def _bars(quiet: bool = False, progress: bool | None = None) -> bool:
    obj = {"quiet": quiet, "progress": progress, "progress_interval": 30.0}
    return progress_display(click.Context(main, obj=obj)).bars


def test_no_color_flag_turns_colour_off_but_keeps_the_progress_bars(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "stderr", FakeTTY())
    assert _bars()  # a TTY gets the bars by default
    result = CliRunner().invoke(main, ["--no-color", "report", "/nonexistent"])
    assert result.exit_code == 2
    assert _bars()
    assert "\x1b[" not in console_line()


def test_no_color_env_keeps_the_progress_bars(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stderr", FakeTTY())
    monkeypatch.setenv("NO_COLOR", "1")
    assert _bars()


def test_quiet_hides_the_bars_and_progress_flags_override(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "stderr", FakeTTY())
    assert not _bars(quiet=True)
    assert not _bars(progress=False)
    assert _bars(quiet=True, progress=True)
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal
    assert not _bars()
    assert _bars(progress=True)


@pytest.mark.parametrize(
    ("shell", "marker"),
    [
        ("bash", "complete -o nosort -F"),
        ("zsh", "#compdef revoker"),
        ("fish", "complete --no-files --command revoker"),
    ],
)
def test_completion_script_is_generated_for_each_shell(shell: str, marker: str) -> None:
    env = {**os.environ, "_REVOKER_COMPLETE": f"{shell}_source"}
    result = subprocess.run(
        [REVOKER], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert marker in result.stdout


def test_bash_completion_completes_subcommands() -> None:
    env = {**os.environ, "_REVOKER_COMPLETE": "bash_complete", "COMP_WORDS": "revoker rep",
           "COMP_CWORD": "1"}  # fmt: skip
    result = subprocess.run(
        [REVOKER], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "plain,report" in result.stdout.splitlines()
