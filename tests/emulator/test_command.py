"""The click command: option errors, seed errors, lazy imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from revoker.credentials import Credentials
from revoker.emulator.command import emulator
from revoker.emulator.config import EmulatorConfig
from revoker.emulator.server import UnsafeHostError, base_url_for, serve


def test_bad_seed_file_exits_2_naming_file_and_line(tmp_path: Path) -> None:
    seed = tmp_path / "keys.csv"
    seed.write_text("stream_key,regions\nk1,na\nk2,atlantis\n")
    result = CliRunner().invoke(
        emulator, ["--seed-keys", str(seed), "--app-id", "a", "--port", "0"]
    )
    assert result.exit_code == 2
    assert f"{seed}:3: unknown region 'atlantis'" in result.output


def test_bad_live_streams_file_exits_2(tmp_path: Path) -> None:
    live = tmp_path / "live.csv"
    live.write_text("stream_key,app_id\nk1,a\n")
    result = CliRunner().invoke(emulator, ["--live-streams", str(live), "--port", "0"])
    assert result.exit_code == 2
    assert f"{live}:1: missing column(s): region" in result.output


def test_customer_id_without_secret_is_a_usage_error() -> None:
    result = CliRunner().invoke(emulator, ["--customer-id", "x"], env={"AGORA_CUSTOMER_SECRET": ""})
    assert result.exit_code == 2
    assert "both --customer-id and --customer-secret" in result.output


def test_rates_outside_0_to_1_are_rejected() -> None:
    result = CliRunner().invoke(emulator, ["--error-rate", "1.5"])
    assert result.exit_code == 2


def test_importing_command_does_not_import_starlette_or_uvicorn() -> None:
    code = (
        "import sys, revoker.emulator.command; "
        "bad = [m for m in ('starlette', 'uvicorn') if m in sys.modules]; "
        "sys.exit(1 if bad else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_serve_refuses_non_loopback_host_unless_explicit() -> None:
    config = EmulatorConfig(credentials=Credentials("a", "b"))
    lines: list[str] = []
    with pytest.raises(UnsafeHostError):
        serve(config, "0.0.0.0", 0, announce=lines.append)
    assert lines == []


def test_base_url_shows_a_connectable_address() -> None:
    assert base_url_for("127.0.0.1", 8080) == "http://127.0.0.1:8080"
    assert base_url_for("0.0.0.0", 81) == "http://127.0.0.1:81"
    assert base_url_for("::1", 82) == "http://[::1]:82"


def test_rate_limit_algorithm_and_jitter_reach_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    import revoker.emulator.server as server

    seen: list[EmulatorConfig] = []
    monkeypatch.setattr(server, "serve", lambda config, *a, **k: seen.append(config))
    runner = CliRunner()
    assert runner.invoke(emulator, ["--port", "0"]).exit_code == 0
    args = ["--port", "0", "--rate-limit-algorithm", "token-bucket", "--jitter-ms", "50"]
    assert runner.invoke(emulator, args).exit_code == 0
    assert [(c.rate_limit_algorithm, c.jitter_ms) for c in seen] == [
        ("sliding-window", 0.0),
        ("token-bucket", 50.0),
    ]


def test_unknown_rate_limit_algorithm_is_a_usage_error() -> None:
    result = CliRunner().invoke(emulator, ["--rate-limit-algorithm", "leaky-bucket"])
    assert result.exit_code == 2
    assert "leaky-bucket" in result.output


@pytest.mark.parametrize("option", ["--latency-ms", "--error-rate", "--delete-rps"])
def test_nan_is_refused_for_every_number_option(option: str) -> None:
    result = CliRunner().invoke(emulator, [option, "nan"])
    assert result.exit_code == 2
    assert "not a finite number" in result.output


# Starlette and uvicorn made unimportable, as after a plain `pip install .`.
_WITHOUT_EXTRA = (
    "import sys, runpy; sys.modules['uvicorn'] = None; sys.modules['starlette'] = None; "
    "sys.argv = ['{prog}', *sys.argv[1:]]; runpy.run_module('{module}', run_name='__main__')"
)


@pytest.mark.parametrize("module", ["revoker", "revoker.emulator"])
def test_emulator_without_its_extra_exits_2_saying_how_to_install_it(module: str) -> None:
    args = ["emulator", "--port", "0"] if module == "revoker" else ["--port", "0"]
    code = _WITHOUT_EXTRA.format(prog=module, module=module)
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "pip install 'revoker[emulator]'" in result.stderr
    assert "base_url=" not in result.stdout
