"""What a run says on stderr: -v (failures, retries, 429s with request IDs), -vv (every
request), -q (errors still), JSON errors under --log-format json; and the summary's
next steps, with the exact command to resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from click.testing import CliRunner, Result

from revoker.cli import main
from tests.conftest import APP, BASE

pytestmark = pytest.mark.usefixtures("creds", "respx_transport")

KEY = "key-xyz-1234567"


def run(tmp_path: Path, *options: str, command: tuple[str, ...] = ()) -> Result:
    args = command or ("revoke", "--key", KEY, "--app-id", APP, "--regions", "eu")
    return CliRunner().invoke(
        main,
        [
            *options,
            *args,
            "--base-url",
            BASE,
            "--audit-log",
            str(tmp_path / "a.jsonl"),
            "--max-rps",
            "0",
        ],
        catch_exceptions=False,
    )


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def throttled_then_ok(api: respx.MockRouter) -> None:
    answers = iter([httpx.Response(429, json={"status": "error", "message": "slow down"})])
    api.delete(url__regex=".*").mock(
        side_effect=lambda _: next(answers, httpx.Response(200, json={"status": "success"}))
    )


def forbidden(api: respx.MockRouter) -> None:
    api.delete(url__regex=".*").respond(
        403, json={"status": "error", "message": "Stream does not belong to this app ID."}
    )


def test_verbose_logs_each_429_and_retry_with_its_request_id(
    tmp_path: Path, api: respx.MockRouter
) -> None:
    throttled_then_ok(api)
    result = run(tmp_path, "--log-format", "json", "-v")
    assert result.exit_code == 0, result.output
    lines = json_lines(result.stderr)
    audit = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    [record] = [r for r in audit if r["event"] == "revoke"]
    first_id = record["attempts"][0]["request_id"]
    [throttled] = [line for line in lines if line["event"] == "throttled 429"]
    [retry] = [line for line in lines if line["event"] == "retrying"]
    assert throttled["request_id"] == retry["request_id"] == first_id
    assert (throttled["region"], throttled["key"], throttled["method"]) == (
        "eu",
        "key-...567",
        "DELETE",
    )
    assert retry["after"] == 429
    assert not [line for line in lines if line["event"] == "request"]  # that is -vv


def test_very_verbose_logs_every_request(tmp_path: Path, api: respx.MockRouter) -> None:
    throttled_then_ok(api)
    result = run(tmp_path, "--log-format", "json", "-vv")
    requests = [line for line in json_lines(result.stderr) if line["event"] == "request"]
    deletes = [line for line in requests if line["method"] == "DELETE"]
    assert [line["status"] for line in deletes] == [429, 200]
    assert all(line["request_id"] for line in requests)


def test_default_verbosity_logs_no_retry_lines(tmp_path: Path, api: respx.MockRouter) -> None:
    throttled_then_ok(api)
    result = run(tmp_path, "--log-format", "json")
    events = {line["event"] for line in json_lines(result.stderr)}
    assert not events & {"retrying", "throttled 429", "request"}


def test_verbose_logs_each_failed_task_with_its_request_id(
    tmp_path: Path, api: respx.MockRouter
) -> None:
    forbidden(api)
    result = run(tmp_path, "--log-format", "json", "-v")
    [failed] = [line for line in json_lines(result.stderr) if line["event"] == "task failed"]
    assert failed["http_status"] == 403
    assert failed["reason"] == "Stream does not belong to this app ID."
    assert failed["request_id"]
    assert KEY not in result.stderr


def test_quiet_still_prints_that_the_run_failed(tmp_path: Path, api: respx.MockRouter) -> None:
    forbidden(api)
    result = run(tmp_path, "--log-format", "console", "-q")
    assert result.exit_code == 1
    assert "revoker: error: revoke: some keys were NOT revoked (exit code 1)" in result.stderr
    assert f"revoker report {tmp_path / 'a.jsonl'}" in result.stderr


def test_errors_are_json_lines_under_log_format_json(tmp_path: Path, api: respx.MockRouter) -> None:
    bad = tmp_path / "keys.csv"
    bad.write_text("stream_key,app_id\nk1,\n")
    result = run(tmp_path, "--log-format", "json", command=("revoke", str(bad)))
    assert result.exit_code == 2
    [line] = json_lines(result.stderr)
    assert line["level"] == "error"
    assert (
        line["event"]
        == f"revoker: error: {bad}:2: no app ID: add an app_id column or give --app-id"
    )
    assert line["exit_code"] == 2


def test_click_usage_errors_are_json_lines_too(tmp_path: Path) -> None:
    result = run(tmp_path, "--log-format", "json", command=("revoke", "--no-such-flag"))
    assert result.exit_code == 2
    [line] = json_lines(result.stderr)
    assert line["event"] == "revoker: error: No such option '--no-such-flag'."


def test_a_failed_run_ends_with_the_exact_resume_command_and_the_verdict(
    tmp_path: Path, api: respx.MockRouter
) -> None:
    forbidden(api)
    result = run(tmp_path, "--log-format", "json")
    lines = result.stdout.splitlines()
    verdict = "revoker revoke: some keys were NOT revoked"
    assert lines[0] == verdict
    assert lines[-1] == f"{verdict} (exit code 1)"
    log = tmp_path / "a.jsonl"
    resume = (
        f"revoker --log-format json revoke --key '<key-...567>' --app-id {APP} --regions eu "
        f"--base-url {BASE} --audit-log {log} --max-rps 0 --resume"
    )
    at = lines.index("next:")
    assert lines[at + 2] == f"    {resume}"
    assert f"  every failure with its request IDs: revoker report {log}" in lines
    assert "(--key values are masked above: give the same keys again)" in result.stdout
    assert KEY not in result.stdout
