"""Secrets: credentials come only from the environment or a 0600 file, and never appear
in stdout, stderr, logs, the audit log or an exception; plain http only to loopback."""

from __future__ import annotations

import base64
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from revoker.cli import main
from revoker.emulator.process import EmulatorProcess

from .helpers import make_keys, revoker_env, run_revoker, write_keys_csv

CUSTOMER_ID = "cid-CANARY-4d1e"
SECRET = "sk-CANARY-7Hq2xZ9wP4"  # must never be printed, logged or recorded
BASIC = base64.b64encode(f"{CUSTOMER_ID}:{SECRET}".encode()).decode()
FORBIDDEN = (SECRET, BASIC)


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    root = tmp_path_factory.mktemp("secrets")
    seed = write_keys_csv(root / "seed.csv", make_keys(8))
    with EmulatorProcess(
        "--seed-keys", str(seed), "--delete-rps", "0", "--get-rps", "0",
        customer_id=CUSTOMER_ID, customer_secret=SECRET,
    ) as emu:  # fmt: skip
        yield emu


def _commands() -> list[str]:
    """Every command ``revoker --help`` lists right now."""
    result = CliRunner().invoke(main, ["--help"])
    section = result.output.split("Commands:", 1)[1]
    return re.findall(r"^\s{2}(\S+)", section, flags=re.MULTILINE)


def _assert_clean(*texts: str) -> None:
    for text in texts:
        for secret in FORBIDDEN:
            assert secret not in text


@pytest.mark.slow
@pytest.mark.integration
def test_no_command_prints_logs_or_records_the_secret(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    keys = make_keys(8)
    keys_csv = write_keys_csv(tmp_path / "keys.csv", keys)
    env = revoker_env({**emulator.client_env(), "REVOKER_AUDIT_LOG": str(tmp_path / "a.jsonl")})
    wrong = {**env, "AGORA_CUSTOMER_SECRET": SECRET + "-wrong"}
    creds_file = tmp_path / "creds.env"
    creds_file.write_text(f"AGORA_CUSTOMER_ID={CUSTOMER_ID}\nAGORA_CUSTOMER_SECRET={SECRET}\n")
    creds_file.chmod(0o600)
    no_env_creds = {
        k: v for k, v in env.items() if k not in ("AGORA_CUSTOMER_ID", "AGORA_CUSTOMER_SECRET")
    }
    audit_logs = [tmp_path / f"{n}.jsonl" for n in ("revoke", "verify", "prune", "wrong", "hmac")]
    new_keys, rotated = tmp_path / "new-keys.csv", tmp_path / "rotate.jsonl"
    outputs: list[str] = []
    k = str(keys_csv)
    runs: list[tuple[list[str], dict[str, str]]] = [
        (["-v", "revoke", k, "--dry-run"], env),
        (["-v", "rotate", k, "--new-keys-file", str(new_keys), "--audit-log", str(rotated)], env),
        (["-v", "revoke", k, "--verify", "--audit-log", str(audit_logs[0])], env),
        (["-v", "verify", k, "--audit-log", str(audit_logs[1])], env),
        (["-v", "show", keys[0], "--app-id", "app1"], env),
        (["-v", "prune", k, "--expired", "--audit-log", str(audit_logs[2])], env),
        (["-v", "report", *map(str, audit_logs[:3])], env),
        (["-v", "revoke", k, "--audit-log", str(audit_logs[3])], wrong),  # 401
        (["-v", "revoke", k, "--auth", "hmac", "--audit-log", str(audit_logs[4])], env),
        (["-v", "revoke", k, "--credentials-file", str(creds_file), "--resume"], no_env_creds),
        (["--log-format", "console", "-v", "verify", k], env),
        (["revoke", k, "--base-url", "http://example.com"], env),
        (["emulator", "--help"], env),
    ]
    known = {"revoke", "verify", "show", "prune", "report", "emulator", "rotate"}
    for command in _commands():  # commands added later are still run, at least with --help
        runs.append(([command, "--help"], env))
        if command not in known:
            runs.append((["-v", command], env))
    ran = set()
    for args, run_env in runs:
        result = run_revoker(*args, env=run_env, timeout=60)
        assert "Traceback" not in result.stderr, (args, result.stderr[-2000:])
        _assert_clean(result.stdout, result.stderr)
        outputs += [result.stdout, result.stderr]
        ran.add(args[0] if not args[0].startswith("-") else next(a for a in args if a[0] != "-"))
    assert ran >= known
    assert audit_logs[0].exists()
    assert audit_logs[3].exists()
    for path in tmp_path.glob("*.jsonl"):
        _assert_clean(path.read_text(encoding="utf-8"))
        outputs.append(path.read_text(encoding="utf-8"))
    # The keys rotate created are only in its new-keys file: no output, log or audit line.
    created = [line.split(",")[5] for line in new_keys.read_text().splitlines()[1:]]
    assert created
    assert not [key for key in created for text in outputs if key in text]


@pytest.mark.integration
def test_secret_never_in_an_exception_message_in_process(
    emulator: EmulatorProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys_csv = write_keys_csv(tmp_path / "keys.csv", make_keys(4))
    for name in ("AGORA_APP_ID", "AGORA_REGIONS", "AGORA_FALLBACK_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    env = emulator.client_env()
    cases = [
        ["revoke", str(keys_csv), "--audit-log", str(tmp_path / "x.jsonl")],
        ["revoke", str(keys_csv), "--base-url", "http://127.0.0.1:9", "--max-attempts", "1"],
        ["verify", str(keys_csv), "--audit-log", str(tmp_path / "nodir" / "x.jsonl")],
    ]
    for args in cases:
        for secret_env in (env, {**env, "AGORA_CUSTOMER_SECRET": SECRET + "-wrong"}):
            result = CliRunner().invoke(main, ["-v", *args], env=secret_env)
            texts = [result.output, result.stderr, repr(result.exception), str(result.exception)]
            _assert_clean(*texts)
            assert isinstance(result.exception, SystemExit | None), result.exc_info


def test_credentials_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    creds_file = tmp_path / "creds.env"
    creds_file.write_text(f"AGORA_CUSTOMER_ID={CUSTOMER_ID}\nAGORA_CUSTOMER_SECRET={SECRET}\n")
    for mode in (0o644, 0o640, 0o604):
        creds_file.chmod(mode)
        result = run_revoker(
            "revoke", "--key", "some-key-123456", "--app-id", "app1",
            "--credentials-file", str(creds_file), "--audit-log", str(tmp_path / "a.jsonl"),
            env=revoker_env(),
        )  # fmt: skip
        assert result.returncode == 2, result.stderr
        assert "chmod 600" in result.stderr
        _assert_clean(result.stdout, result.stderr)
        assert not (tmp_path / "a.jsonl").exists()


def test_credentials_are_never_command_line_options() -> None:
    for name, command in main.commands.items():
        if name == "emulator":  # the local emulator's own test credentials, loopback only
            continue
        options = [o for p in command.params if isinstance(p, click.Option) for o in p.opts]
        assert not [o for o in options if "secret" in o or "password" in o], name


def test_no_option_turns_tls_verification_off() -> None:
    words = ("insecure", "no-verify", "verify-ssl", "verify-tls", "ssl", "tls", "cert", "ca-")
    for name, command in main.commands.items():
        options = [o for p in command.params for o in getattr(p, "opts", [])]
        assert not [o for o in options if any(w in o for w in words)], name


@pytest.mark.parametrize(
    ("option", "url"),
    [
        ("--base-url", "http://example.com"),
        ("--base-url", "http://10.0.0.1:8080"),
        ("--fallback-url", "http://api.sd-rtn.com"),
    ],
)
def test_plain_http_to_a_non_loopback_host_exits_2_before_sending(
    tmp_path: Path, option: str, url: str
) -> None:
    env = revoker_env({"AGORA_CUSTOMER_ID": CUSTOMER_ID, "AGORA_CUSTOMER_SECRET": SECRET})
    audit = tmp_path / "a.jsonl"
    result = run_revoker(
        "revoke", "--key", "some-key-123456", "--app-id", "app1", option, url,
        "--audit-log", str(audit), env=env,
    )  # fmt: skip
    assert result.returncode == 2
    assert "plain http is refused" in result.stderr
    assert not audit.exists()


def test_bandit_finds_no_issue_in_revoker() -> None:
    root = Path(__file__).resolve().parents[2]
    bandit = Path(root / ".venv" / "bin" / "bandit")
    if not bandit.exists():
        pytest.skip("bandit not installed in .venv")
    result = subprocess.run(
        [str(bandit), "-q", "-c", "pyproject.toml", "-r", "revoker"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout
