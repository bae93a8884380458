"""The progress display: rich bars on a terminal (read off a pyte screen under a
pseudo-terminal, against the emulator), a periodic log line elsewhere."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pyte
import pytest

from revoker.cli.progress import PassCounts, RunDisplay
from revoker.emulator.process import EmulatorProcess
from revoker.models import Outcome, Task, TaskResult
from tests.reliability.helpers import (
    make_keys,
    revoker_cmd,
    revoker_env,
    run_revoker,
    write_keys_csv,
)

COLUMNS, LINES = 100, 24
BAR = re.compile(r"^(delete|verify|cut)\s+\S+\s+(\d+)/(\d+)\s")


def run_on_terminal(args: list[str], env: dict[str, str], stdout: Path) -> tuple[int, list[str]]:
    """Run revoker with stderr on a 100x24 pseudo-terminal; its exit code and every
    screen it drew (each as the terminal's lines)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", LINES, COLUMNS, 0, 0))
    screen = pyte.Screen(COLUMNS, LINES)
    stream = pyte.ByteStream(screen)
    screens: list[str] = []
    with stdout.open("w") as out:
        proc = subprocess.Popen(
            revoker_cmd(*args), env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=slave
        )
        os.close(slave)
        try:
            while True:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                stream.feed(chunk)
                screens.append("\n".join(line.rstrip() for line in screen.display))
        finally:
            os.close(master)
            code = proc.wait(timeout=120)
    return code, screens


def terminal_env(emulator: EmulatorProcess) -> dict[str, str]:
    env = revoker_env(emulator.client_env())
    del env["REVOKER_LOG_FORMAT"]  # auto: console lines on the terminal
    env["NO_COLOR"] = "1"  # colour off, progress still drawn
    return env


def bars(screen: str) -> dict[str, tuple[int, int]]:
    """Each pass's done/total as the screen shows it."""
    found = {}
    for line in screen.splitlines():
        match = BAR.match(line)
        if match:
            found[match[1]] = (int(match[2]), int(match[3]))
    return found


@pytest.mark.integration
def test_a_long_run_draws_per_pass_bars_with_rate_and_eta_and_failures_above_them(
    tmp_path: Path,
) -> None:
    keys = make_keys(150)
    keys_csv = write_keys_csv(tmp_path / "keys.csv", keys)
    doomed = write_keys_csv(tmp_path / "doomed.csv", ["doomed-key-00001"], app_id="app403")
    with EmulatorProcess("--seed-keys", str(keys_csv), "--forbidden-app", "app403") as emulator:
        args = ["revoke", str(keys_csv), str(doomed), "--verify", "--verify-delay", "0.2",
                "--audit-log", str(tmp_path / "audit.jsonl"), "--max-rps", "100"]  # fmt: skip
        code, screens = run_on_terminal(args, terminal_env(emulator), tmp_path / "out.txt")
    assert code == 1  # the forbidden app's key failed
    total = 151 * 4
    running = [s for s in screens if 0 < bars(s).get("delete", (0, 0))[0] < total]
    assert running, screens[-1]
    middle = running[len(running) // 2]
    assert set(bars(middle)) == {"delete", "verify"}
    assert re.search(r"delete .*\d+\.\d/s elapsed \d:\d\d:\d\d ETA \d:\d\d:\d\d", middle), middle
    assert re.search(r"delete: na \d+ eu \d+ ap \d+ cn \d+ \| retries \d+ \| 429s \d+", middle)
    assert bars(screens[-1]) == {"delete": (total, total), "verify": (total, total)}
    failed_regions = set()
    for screen in screens:
        lines = screen.splitlines()
        first_bar = next((i for i, line in enumerate(lines) if BAR.match(line)), len(lines))
        for i, line in enumerate(lines):
            if line.startswith("delete failed: "):
                assert i < first_bar, screen  # printed above the bars
                assert " app403 doom...001 " in line
                failed_regions.add(line.split()[2])
            if BAR.match(line):  # log lines are never glued onto a bar
                assert "run started" not in line
                assert "run finished" not in line
    assert failed_regions == {"na", "eu", "ap", "cn"}  # one line per failed pair
    assert any("run started" in line for screen in screens for line in screen.splitlines())
    stdout = (tmp_path / "out.txt").read_text()
    assert stdout.startswith("revoker revoke: some keys were NOT revoked")


@pytest.mark.integration
def test_a_resumed_verify_bar_stays_within_its_total(tmp_path: Path) -> None:
    keys = make_keys(60)
    keys_csv = write_keys_csv(tmp_path / "keys.csv", keys)
    audit = tmp_path / "audit.jsonl"
    with EmulatorProcess("--seed-keys", str(keys_csv)) as emulator:
        first = run_revoker(
            "revoke", str(keys_csv), "--regions", "na,eu", "--audit-log", str(audit),
            "--max-rps", "0", env=revoker_env(emulator.client_env()),
        )  # fmt: skip
        assert first.returncode == 0, first.stderr
        args = ["revoke", str(keys_csv), "--resume", "--verify", "--verify-delay", "0",
                "--audit-log", str(audit), "--max-rps", "0"]  # fmt: skip
        code, screens = run_on_terminal(args, terminal_env(emulator), tmp_path / "out.txt")
    assert code == 0
    for screen in screens:
        for done, total in bars(screen).values():
            assert done <= total, screen
    # The DELETEs left (ap, cn) and a verify of every pair, done in the earlier run too.
    assert bars(screens[-1]) == {"delete": (120, 120), "verify": (240, 240)}
    bar_lines = [line for line in screens[-1].splitlines() if BAR.match(line)]
    assert len(bar_lines) == 2  # redrawn in place, not one line per result


@pytest.mark.integration
def test_off_a_terminal_a_progress_line_is_logged_every_interval(tmp_path: Path) -> None:
    keys_csv = write_keys_csv(tmp_path / "keys.csv", make_keys(20))
    with EmulatorProcess("--seed-keys", str(keys_csv), "--delete-rps", "0") as emulator:
        result = run_revoker(
            "--progress-interval", "0.2", "revoke", str(keys_csv), "--max-rps", "40",
            "--audit-log", str(tmp_path / "audit.jsonl"), env=revoker_env(emulator.client_env()),
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    progress = [line for line in lines if line["event"] == "progress"]
    assert progress, result.stderr  # 80 DELETEs at 40/s: about 2 s, lines every 0.2 s
    last = progress[-1]
    assert last["pass"] == "delete"
    assert last["total"] == 80
    assert 0 < last["done"] <= 80
    assert set(last) >= {"rate_per_s", "elapsed_s", "eta_s", "per_region", "retries"}
    assert set(last["per_region"]) <= {"na", "eu", "ap", "cn"}
    assert "\r" not in result.stderr  # no bar drawn off a terminal


# A run, then the top-level packages of those it never needed that were loaded.
LOADED_PROBE = """
import runpy, sys
sys.argv = ["revoker", *sys.argv[1:]]
try:
    runpy.run_module("revoker", run_name="__main__")
except SystemExit:
    pass
print("LOADED", sorted({name.split(".")[0] for name in sys.modules} & {"rich", "pygments"}))
"""


@pytest.mark.integration
def test_off_a_terminal_a_run_never_loads_rich(tmp_path: Path) -> None:
    keys_csv = write_keys_csv(tmp_path / "keys.csv", make_keys(3))
    with EmulatorProcess("--seed-keys", str(keys_csv)) as emulator:
        result = subprocess.run(
            [sys.executable, "-c", LOADED_PROBE, "revoke", str(keys_csv),
             "--audit-log", str(tmp_path / "audit.jsonl"), "--max-rps", "0"],
            env=revoker_env(emulator.client_env()), capture_output=True, text=True,
            timeout=60, stdin=subprocess.DEVNULL, check=False,
        )  # fmt: skip
    assert "revoked" in result.stdout, result.stderr
    assert result.stdout.splitlines()[-1] == "LOADED []"


def _result(outcome: Outcome = Outcome.REVOKED) -> TaskResult:
    return TaskResult(Task("app", "na", "key-0000000001"), outcome)


def test_the_eta_before_any_result_is_the_paced_rate() -> None:
    counts = PassCounts("revoke", total=1000, rate_cap=50.0)
    assert counts.eta() == pytest.approx(20.0)


def test_the_eta_never_assumes_a_rate_above_the_cap() -> None:
    counts = PassCounts("revoke", total=200, rate_cap=50.0, started=0.0)
    for _ in range(100):
        counts.add(_result())
    counts.last = 10.0  # 100 results in 10 s: 10/s observed, under the cap
    assert counts.eta() == pytest.approx(10.0)
    counts.last = 0.5 + 2.0  # 100 results in 2.5 s: 40/s
    assert counts.eta() == pytest.approx(100 / 40)
    counts.started, counts.last = 0.0, 2.0  # 50/s would be the cap itself
    counts.total = 100_100
    assert counts.eta() == pytest.approx(100_000 / 50)


def test_problems_count_each_pair_once() -> None:
    counts = PassCounts("verify", total=3, rate_cap=None)
    counts.add(_result(Outcome.PRESENT))
    counts.add(_result(Outcome.ABSENT))
    assert counts.problems == 1
    assert counts.fields()["outcomes"] == {"absent": 1, "present": 1}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_pass_behind_the_deletes_has_their_eta_plus_the_delay_not_its_own() -> None:
    clock = Clock()
    # 1000 DELETEs at 50/s (20 s); each verified 10 s after its DELETE, GETs at 100/s.
    lead = PassCounts("revoke", total=1000, rate_cap=50.0, clock=clock, started=0.0)
    verify = PassCounts(
        "verify", total=1000, rate_cap=100.0, clock=clock, started=0.0, lead=lead, delay=10.0
    )
    assert verify.eta() == pytest.approx(30.0)  # not 1000 / 100: the DELETEs come first
    for tick in range(1, 601):  # 12 s of DELETEs
        clock.now = tick / 50
        lead.add(_result())
        if clock.now > 10.0:
            verify.add(_result(Outcome.ABSENT))
    # Results came for 2 s after 10 s with none due: the rate is the lead's 50/s, not
    # 100 / 12 s (that gave an ETA of about 108 s).
    assert verify.rate() == pytest.approx(50.0)
    assert verify.eta() == pytest.approx(30.0 - clock.now, rel=0.02)
    assert verify.following
    assert verify.fields()["behind"] == "delete"
    for tick in range(601, 1001):  # the last DELETE at 20 s
        clock.now = tick / 50
        lead.add(_result())
    clock.now = 21.0
    assert not verify.following
    assert verify.eta() == pytest.approx(9.0)  # the last verification is due at 30 s


def test_a_resumed_verify_measures_its_rate_from_the_first_pair_the_deletes_sent_it() -> None:
    clock = Clock()
    # --resume: 100 pairs deleted in the earlier run are verified at once (100/s, done
    # within 1 s), then 1000 DELETEs at 50/s (20 s), each verified 10 s after it.
    lead = PassCounts("revoke", total=1000, rate_cap=50.0, clock=clock, started=0.0)
    verify = PassCounts(
        "verify", total=1100, rate_cap=100.0, clock=clock, started=0.0, lead=lead, delay=10.0
    )
    for tick in range(1, 101):
        clock.now = tick / 100
        verify.add(_result(Outcome.ABSENT))
    assert verify.rate() == pytest.approx(100.0, rel=0.02)  # the earlier run's pairs
    for tick in range(1, 601):  # 12 s of DELETEs
        clock.now = tick / 50
        lead.add(_result())
        if clock.now > 10.0:
            verify.add(_result(Outcome.ABSENT))
    # The verifications of the DELETEs run at their 50/s since 10 s; the 9 s before,
    # with nothing due, are not in the rate (199 results over 12 s: 16.6/s, an ETA of 54 s).
    assert verify.rate() == pytest.approx(50.0, rel=0.02)
    assert verify.eta() == pytest.approx(30.0 - clock.now, rel=0.02)
    for tick in range(601, 1001):  # the last DELETE at 20 s
        clock.now = tick / 50
        lead.add(_result())
        verify.add(_result(Outcome.ABSENT))
    assert not verify.following
    assert verify.eta() == pytest.approx(10.0, rel=0.02)  # the last verification is due at 30 s


def test_the_display_links_a_pass_to_the_one_it_runs_behind() -> None:
    display = RunDisplay(bars=False, interval=None)
    display.pass_started("revoke", 10, 50.0)
    display.pass_started("verify", 10, 100.0, behind="revoke", delay=2.0)
    assert display.passes["verify"].lead is display.passes["revoke"]
    assert display.passes["verify"].delay == 2.0
