"""The CLI end to end in-process (CliRunner) against a respx-mocked API."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from click.testing import CliRunner, Result

from revoker.cli import main
from tests.conftest import APP, BASE, CUSTOMER_ID, SECRET, api_not_found

pytestmark = pytest.mark.usefixtures("creds", "respx_transport")


def invoke(tmp_path: Path, *args: str, stdin: str | None = None, verbose: bool = False) -> Result:
    audit = tmp_path / "audit.jsonl"
    return CliRunner().invoke(
        main,
        [
            "--log-format",
            "json",
            *(["-v"] if verbose else []),
            *args[:1],
            "--base-url",
            BASE,
            "--audit-log",
            str(audit),
            "--max-rps",
            "0",
            *args[1:],
        ],
        input=stdin,
        catch_exceptions=False,
    )


def audit_lines(tmp_path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]


def ok(status: int = 200) -> httpx.Response:
    return httpx.Response(
        status,
        json={"status": "success"}
        if status == 200
        else {"status": "error", "message": "Resource not found and destroyed."},
    )


def test_revoke_deletes_every_key_in_every_region_and_exits_0(
    tmp_path: Path, api: respx.MockRouter, keys_csv: Path
) -> None:
    route = api.delete(url__regex=".*").mock(return_value=ok())
    result = invoke(tmp_path, "revoke", str(keys_csv))
    assert result.exit_code == 0, result.output
    sent = sorted(c.request.url.path for c in route.calls)
    assert sent == sorted(
        [
            f"/{r}/v1/projects/{APP}/rtls/ingress/streamkeys/key-aaaa-0000001"
            for r in ("na", "eu", "ap", "cn")
        ]
        + [f"/{r}/v1/projects/{APP}/rtls/ingress/streamkeys/key-bbbb-0000002" for r in ("na", "eu")]
        + ["/cn/v1/projects/otherapp/rtls/ingress/streamkeys/key-cccc-0000003"]
    )
    verdict = result.stdout.splitlines()[0]
    assert verdict == (
        "revoker revoke: every key revoked in every region listed for it "
        "(2 keys limited to fewer regions by their CSV regions column)"
    )
    assert "does not stop a stream already running" in result.stdout
    events = [line["event"] for line in audit_lines(tmp_path)]
    # One listing per (app ID, region) before the first DELETE: 4 + 1 for otherapp in cn.
    assert events == ["run_started"] + ["listing"] * 5 + ["revoke"] * 7 + ["run_finished"]


@pytest.mark.parametrize("option", ["--base-url", "--fallback-url"])
@pytest.mark.parametrize("command", ["revoke", "verify", "prune", "show"])
def test_a_base_url_with_a_path_is_refused_before_sending(
    tmp_path: Path, api: respx.MockRouter, command: str, option: str
) -> None:
    route = api.route().mock(return_value=ok())
    args = ["--key", "key-one-000001"] if command != "show" else ["key-one-000001"]
    extra = ["--expired"] if command == "prune" else []
    result = CliRunner().invoke(
        main, [command, *args, *extra, "--app-id", APP, option, f"{BASE}/dev"]
    )
    assert result.exit_code == 2, result.output
    assert "has a path ('/dev')" in result.output
    assert "--allow-base-path" in result.output
    assert route.call_count == 0


def test_allow_base_path_sends_under_the_path(tmp_path: Path, api: respx.MockRouter) -> None:
    route = api.delete(url__regex=".*").mock(return_value=ok())
    result = invoke(
        tmp_path, "revoke", "--key", "key-one", "--regions", "na", "--app-id", APP,
        "--base-url", f"{BASE}/proxy", "--allow-base-path",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert route.calls.last.request.url.path.startswith("/proxy/na/v1/projects/")


def test_a_key_with_an_invisible_character_is_refused_with_file_line_column(
    tmp_path: Path, api: respx.MockRouter
) -> None:
    route = api.route().mock(return_value=ok())
    keys = tmp_path / "keys.txt"
    keys.write_text("key-aaaa-0000001\nleakedK\u200bey-0001\n", encoding="utf-8")
    for extra in ([], ["--allow-non-ascii-keys"]):
        result = invoke(tmp_path, "revoke", str(keys), "--app-id", APP, *extra)
        assert result.exit_code == 2, result.output
        assert f"{keys}:2: invisible character U+200B at column 8" in result.output
    assert route.call_count == 0


def test_allow_non_ascii_keys_sends_a_visible_non_ascii_key(
    tmp_path: Path, api: respx.MockRouter
) -> None:
    route = api.delete(url__regex=".*").mock(return_value=ok())
    refused = invoke(tmp_path, "revoke", "--key", "clé-0001", "--app-id", APP, "--regions", "na")
    assert refused.exit_code == 2
    assert "--key:1: non-ASCII character U+00E9 at column 3" in refused.output
    assert route.call_count == 0
    result = invoke(
        tmp_path, "revoke", "--key", "clé-0001", "--app-id", APP, "--regions", "na",
        "--allow-non-ascii-keys",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert route.calls.last.request.url.raw_path.endswith(b"/cl%C3%A9-0001")


@pytest.mark.parametrize("command", ["revoke", "verify", "prune"])
def test_an_input_file_given_as_the_audit_log_is_refused(
    tmp_path: Path, api: respx.MockRouter, keys_csv: Path, command: str
) -> None:
    route = api.route().mock(return_value=ok())
    before = keys_csv.read_bytes()
    extra = ["--expired"] if command == "prune" else []
    link = tmp_path / "same-file.csv"
    link.hardlink_to(keys_csv)
    for audit in (keys_csv, link):
        result = invoke(tmp_path, command, str(keys_csv), *extra, "--audit-log", str(audit))
        assert result.exit_code == 2, result.output
        assert f"{audit}: the audit log is also an input file ({keys_csv})" in result.output
    assert route.call_count == 0
    assert keys_csv.read_bytes() == before


def test_a_fifo_as_the_audit_log_is_refused_before_sending(
    tmp_path: Path, api: respx.MockRouter, keys_csv: Path
) -> None:
    route = api.route().mock(return_value=ok())
    fifo = tmp_path / "audit.fifo"
    os.mkfifo(fifo)
    result = invoke(tmp_path, "revoke", str(keys_csv), "--audit-log", str(fifo))
    assert result.exit_code == 2, result.output
    assert f"{fifo}: the audit log must be a regular file (this is a FIFO)" in result.output
    assert route.call_count == 0


def test_audit_log_is_created_with_mode_0600(
    tmp_path: Path, api: respx.MockRouter, keys_csv: Path
) -> None:
    api.delete(url__regex=".*").mock(return_value=ok())
    invoke(tmp_path, "revoke", str(keys_csv))
    assert stat.S_IMODE((tmp_path / "audit.jsonl").stat().st_mode) == 0o600


def test_json_summary_is_machine_readable(
    tmp_path: Path, api: respx.MockRouter, keys_csv: Path
) -> None:
    api.delete(url__regex=".*").mock(side_effect=api_not_found)
    result = invoke(tmp_path, "revoke", str(keys_csv), "--output", "json")
    summary = json.loads(result.stdout)
    # Found in no region and never revoked in this log: not found, never "revoked".
    assert summary["exit_code"] == 1
    assert summary["keys"]["not_found"] == 3
    assert summary["keys"]["revoked"] == 0
    # Every count is there, 0 included: a script reads .revoke.counts.revoked as is.
    assert summary["schema_version"] == 1
    assert summary["revoke"]["counts"] == {
        "absent": 7,
        "failed": 0,
        "not_attempted": 0,
        "revoked": 0,
    }
    assert summary["revoke"]["per_region"]["cn"] == {
        "absent": 2,
        "failed": 0,
        "not_attempted": 0,
        "revoked": 0,
    }
    assert summary["revoke"]["extra"]["throttled_429"] == 0
    assert summary["audit_log"] == str(tmp_path / "audit.jsonl")


def test_a_failed_task_exits_1_and_lists_the_failure(tmp_path: Path, api: respx.MockRouter) -> None:
    api.delete(url__regex=".*").respond(
        403,
        json={"status": "error", "message": "Stream does not belong to this app ID."},
        headers={"X-Request-ID": "srv-1"},
    )
    result = invoke(
        tmp_path, "revoke", "--key", "key-xyz-12345", "--app-id", APP, "--regions", "eu"
    )
    assert result.exit_code == 1
    assert "Stream does not belong to this app ID." in result.stdout
    assert "some keys were NOT revoked" in result.stdout


def test_wrong_credentials_exit_3_and_record_the_rest_not_attempted(
    tmp_path: Path, api: respx.MockRouter
) -> None:
    api.delete(url__regex=".*").respond(
        401, json={"status": "error", "message": "Invalid authentication credentials."}
    )
    keys = [f"--key=k-{i:04d}" for i in range(50)]
    result = invoke(tmp_path, "revoke", *keys, "--app-id", APP, "--concurrency", "2")
    assert result.exit_code == 3
    assert "credentials rejected" in result.stdout
    outcomes = [r["outcome"] for r in audit_lines(tmp_path) if r["event"] == "revoke"]
    [not_started] = [r for r in audit_lines(tmp_path) if r["event"] == "not_started"]
    assert len(outcomes) + not_started["tasks"] == 200
    assert outcomes.count("not_attempted") + not_started["tasks"] >= 198


@pytest.mark.parametrize(
    ("content", "where"),
    [
        ("stream_key,app_id\nk1,a\n,a\n", "keys.csv:3: empty stream key"),
        ("stream_key,app_id,regions\nk1,a,na;moon\n", "keys.csv:2: unknown region 'moon'"),
        ('stream_key\nk1\n"k2\n', "keys.csv:3: malformed CSV"),
        ("stream_key,app_id\nk1,\n", "keys.csv:2: no app ID"),
    ],
)
def test_bad_input_exits_2_naming_file_and_line_and_sends_nothing(
    tmp_path: Path, api: respx.MockRouter, content: str, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("keys.csv").write_text(content)
    route = api.route().mock(return_value=ok())
    result = invoke(tmp_path, "revoke", "keys.csv")
    assert result.exit_code == 2
    assert where in result.stderr
    assert isinstance(result.exception, SystemExit), "a clean exit, not an exception"
    assert route.call_count == 0
    assert not (tmp_path / "audit.jsonl").exists()


def test_unreadable_file_exits_2_and_sends_nothing(tmp_path: Path, api: respx.MockRouter) -> None:
    route = api.route().mock(return_value=ok())
    result = invoke(tmp_path, "revoke", str(tmp_path / "nope.csv"), "--app-id", APP)
    assert result.exit_code == 2
    assert "nope.csv:1: cannot read file" in result.stderr
    assert route.call_count == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--verify", "--verify-delay", "-1"],
            "--verify-delay must be a number of seconds from 0 to 3600",
        ),
        (
            ["--verify", "--verify-delay", "inf"],
            "--verify-delay must be a number of seconds from 0 to 3600",
        ),
        (
            ["--verify", "--verify-delay", "nan"],
            "--verify-delay must be a number of seconds from 0 to 3600",
        ),
        (["--verify-delay", "1"], "--verify-delay needs --verify"),
    ],
)
def test_bad_verify_delay_exits_2_and_sends_nothing(
    tmp_path: Path, api: respx.MockRouter, args: list[str], message: str
) -> None:
    route = api.route().mock(return_value=ok())
    result = invoke(tmp_path, "revoke", "--key", "key-one-123456", "--app-id", APP, *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert route.call_count == 0
    assert not (tmp_path / "audit.jsonl").exists()


def test_missing_credentials_exit_2_naming_the_variable(
    tmp_path: Path, api: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AGORA_CUSTOMER_SECRET")
    route = api.route().mock(return_value=ok())
    result = invoke(tmp_path, "revoke", "--key", "k1", "--app-id", APP)
    assert result.exit_code == 2
    assert "AGORA_CUSTOMER_SECRET" in result.stderr
    assert route.call_count == 0


def test_unopenable_audit_log_exits_2_before_any_request(
    tmp_path: Path, api: respx.MockRouter
) -> None:
    route = api.route().mock(return_value=ok())
    result = CliRunner().invoke(
        main,
        [
            "revoke",
            "--key",
            "k1",
            "--app-id",
            APP,
            "--base-url",
            BASE,
            "--audit-log",
            str(tmp_path / "no-such-dir" / "audit.jsonl"),
        ],
    )
    assert result.exit_code == 2
    assert "cannot open audit log" in result.stderr
    assert route.call_count == 0


def test_plain_http_to_a_remote_host_is_refused(tmp_path: Path, api: respx.MockRouter) -> None:
    result = CliRunner().invoke(
        main, ["revoke", "--key", "k1", "--app-id", APP, "--base-url", "http://api.agora.io"]
    )
    assert result.exit_code == 2
    assert "plain http is refused" in result.stderr


def test_dry_run_prints_the_plan_and_sends_nothing(
    tmp_path: Path, api: respx.MockRouter, keys_csv: Path
) -> None:
    route = api.route().mock(return_value=ok())
    result = invoke(tmp_path, "revoke", str(keys_csv), "--dry-run")
    assert result.exit_code == 0
    assert "plan: 3 keys, 7 tasks" in result.stdout
    assert route.call_count == 0
    assert not (tmp_path / "audit.jsonl").exists()


def test_keys_are_read_from_stdin(tmp_path: Path, api: respx.MockRouter) -> None:
    route = api.delete(url__regex=".*").mock(return_value=ok())
    result = invoke(
        tmp_path,
        "revoke",
        "-",
        "--app-id",
        APP,
        "--regions",
        "na",
        stdin="# from the incident ticket\nkey-one\nkey-two\nkey-one\n",
    )
    assert result.exit_code == 0
    assert route.call_count == 2


def test_resume_skips_pairs_already_done(tmp_path: Path, api: respx.MockRouter) -> None:
    statuses = iter([200, 503, 503, 503])
    api.delete(url__regex=".*").mock(side_effect=lambda _: ok(next(statuses, 200)))
    first = invoke(
        tmp_path,
        "revoke",
        "--key",
        "key-one",
        "--key",
        "key-two",
        "--app-id",
        APP,
        "--regions",
        "na",
        "--concurrency",
        "1",
        "--max-attempts",
        "3",
    )
    assert first.exit_code == 1
    api.reset()
    route = api.delete(url__regex=".*").mock(return_value=ok())
    second = invoke(
        tmp_path,
        "revoke",
        "--key",
        "key-one",
        "--key",
        "key-two",
        "--app-id",
        APP,
        "--regions",
        "na",
        "--resume",
    )
    assert second.exit_code == 0, second.stderr
    assert route.call_count == 1
    assert route.calls.last.request.url.path.endswith("/key-two")
    assert "1 already done (resume)" in second.stdout


def test_verify_exits_0_when_every_pair_is_absent(tmp_path: Path, api: respx.MockRouter) -> None:
    api.get(url__regex=".*").mock(side_effect=api_not_found)
    result = invoke(tmp_path, "verify", "--key", "key-one", "--app-id", APP)
    assert result.exit_code == 0
    assert "every key absent in every region" in result.stdout
    assert [r["outcome"] for r in audit_lines(tmp_path) if r["event"] == "verify"] == ["absent"] * 4


def test_verify_exits_1_when_a_key_is_still_present(tmp_path: Path, api: respx.MockRouter) -> None:
    api.get(url__regex=r"^https://agora.test/(na|eu|ap)/.*").mock(side_effect=api_not_found)
    api.get(url__regex=r"^https://agora.test/cn/.*").respond(
        200,
        json={
            "status": "success",
            "data": {
                "streamKey": "key-one",
                "channel": "c",
                "uid": "1",
                "expiresAfter": 0,
                "createdAt": "1686820170",
            },
        },
    )
    result = invoke(tmp_path, "verify", "--key", "key-one", "--app-id", APP)
    assert result.exit_code == 1
    assert "still present" in result.stdout


def test_sigint_exits_130_after_in_flight_requests_are_recorded(
    tmp_path: Path, api: respx.MockRouter
) -> None:
    def interrupt(request: httpx.Request) -> httpx.Response:
        os.kill(os.getpid(), signal.SIGINT)
        return ok()

    route = api.delete(url__regex=".*").mock(side_effect=interrupt)
    keys = [f"--key=key-{i:03d}" for i in range(10)]
    result = invoke(tmp_path, "revoke", *keys, "--app-id", APP, "--concurrency", "1")
    assert result.exit_code == 130
    outcomes = [r["outcome"] for r in audit_lines(tmp_path) if r["event"] == "revoke"]
    [not_started] = [r for r in audit_lines(tmp_path) if r["event"] == "not_started"]
    assert len(outcomes) + not_started["tasks"] == 40, "every task is accounted for"
    assert outcomes.count("revoked") == route.call_count, "every request sent is recorded"
    assert outcomes.count("not_attempted") + not_started["tasks"] >= 36
    assert audit_lines(tmp_path)[-1]["exit_code"] == 130
    assert "interrupted" in result.stdout


def test_shard_count_takes_the_index_from_the_job_completion_index(
    tmp_path: Path, api: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "1")
    keys = [f"--key=key-{i:03d}" for i in range(30)]
    result = invoke(
        tmp_path,
        "revoke",
        *keys,
        "--app-id",
        APP,
        "--shard-count",
        "3",
        "--dry-run",
        "--output",
        "json",
    )
    plan = json.loads(result.stdout)["plan"]
    assert 0 < plan["keys"] < 30
    assert plan["out_of_shard"] == 30 - plan["keys"]


def test_no_credential_value_appears_in_any_output(
    tmp_path: Path, api: respx.MockRouter, keys_csv: Path
) -> None:
    api.delete(url__regex=".*").mock(side_effect=[ok(503), *[ok()] * 20])
    api.get(url__regex=".*").respond(401, json={"message": f"bad secret {SECRET}"})
    result = invoke(tmp_path, "revoke", str(keys_csv), "--verify", verbose=True)
    everything = result.stdout + result.stderr + (tmp_path / "audit.jsonl").read_text()
    assert SECRET not in everything
    assert CUSTOMER_ID not in (tmp_path / "audit.jsonl").read_text()


def test_version_and_help_work_without_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGORA_CUSTOMER_SECRET")
    assert CliRunner().invoke(main, ["--version"]).exit_code == 0
    assert "revoke" in CliRunner().invoke(main, ["--help"]).stdout


@pytest.mark.parametrize(
    "option",
    [
        ["--timeout", "nan"],
        ["--timeout", "inf"],
        ["--max-rps", "nan"],
        ["--max-rps", "-inf"],
        ["--max-rps", "-1"],
    ],
)
def test_nan_inf_or_negative_numbers_exit_2_and_send_nothing(
    tmp_path: Path, api: respx.MockRouter, keys_csv: Path, option: list[str]
) -> None:
    route = api.route().mock(return_value=ok())
    result = invoke(tmp_path, "revoke", str(keys_csv), *option)
    assert result.exit_code == 2
    assert f"Invalid value for '{option[0]}'" in result.stderr
    assert route.call_count == 0


def _to_full_device(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGORA_", "REVOKER_"))}
    env.update(AGORA_CUSTOMER_ID=CUSTOMER_ID, AGORA_CUSTOMER_SECRET=SECRET, AGORA_APP_ID=APP)
    with open("/dev/full", "w") as full:
        return subprocess.run(
            [sys.executable, "-m", "revoker", *args],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=60,
            check=False,
        )


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_stdout_is_a_clear_error_exit_1_after_requests_were_sent(tmp_path: Path) -> None:
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()  # nothing listens there: every request is refused at once
    result = _to_full_device(
        tmp_path, "revoke", "--key", "key-aaaa-0000001", "--regions", "na",
        "--base-url", f"http://127.0.0.1:{port}", "--max-attempts", "1", "--audit-log", "a.jsonl",
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "cannot write to stdout (No space left on device)" in result.stderr
    assert "the audit log has the results" in result.stderr


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_stdout_is_a_clear_error_exit_2_when_nothing_was_sent(tmp_path: Path) -> None:
    result = _to_full_device(tmp_path, "revoke", "--key", "key-aaaa-0000001", "--dry-run")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "cannot write to stdout (No space left on device); nothing was sent" in result.stderr


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_streams_refuses_a_max_rps_that_is_not_a_finite_rate(
    api: respx.MockRouter, keys_csv: Path, value: str
) -> None:
    route = api.route().mock(return_value=ok())
    result = CliRunner().invoke(
        main, ["streams", str(keys_csv), "--base-url", BASE, "--max-rps", value]
    )
    assert result.exit_code == 2
    assert "Invalid value for '--max-rps'" in result.stderr
    assert route.call_count == 0


@pytest.mark.parametrize("command", ["revoke", "verify", "prune", "rotate", "streams", "show"])
def test_help_shows_the_environment_variable_of_every_option_that_has_one(command: str) -> None:
    from revoker.cli import main as group

    sub = group.commands[command]
    with_envvar = [p for p in sub.params if getattr(p, "envvar", None)]
    assert with_envvar
    text = " ".join(CliRunner().invoke(main, [command, "--help"]).output.split())
    for param in with_envvar:
        assert f"env var: {param.envvar}" in text, param.name


def test_a_key_file_edited_during_the_run_is_caught_by_content_and_the_row_not_sent(
    tmp_path: Path, api: respx.MockRouter
) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text("key-aaaa-0000001\nkey-bbbb-0000002\n")

    def edit_then_list(request: httpx.Request) -> httpx.Response:
        # Between validation and the first DELETE: one key replaced, same length.
        keys.write_text("key-aaaa-0000001\nkey-XXXX-0000002\n")
        return httpx.Response(200, json={"status": "success", "data": []})

    api.get(url__regex=r"/online-streams$").mock(side_effect=edit_then_list)
    route = api.delete(url__regex=".*").mock(return_value=ok())
    result = invoke(tmp_path, "revoke", str(keys), "--app-id", APP)
    assert result.exit_code == 1, result.output
    sent = {c.request.url.path.rsplit("/", 1)[1] for c in route.calls}
    assert sent == {"key-aaaa-0000001"}
    assert f"differ from what was validated and were NOT sent: {keys}:2" in result.stdout
    assert "key-XXXX-0000002" not in result.output
