"""The composite GitHub Action (action.yml + action/run.py), run the way a runner runs it.

Each ``run:`` step's ``${{ }}`` expressions are evaluated from the step's inputs
(defaults from action.yml) and ``github.action_path``, and the script runs with
``bash --noprofile --norc -eo pipefail`` and the GITHUB_* files set. The install
step is checked, not run (it would download the build backend and
dependencies): a stand-in virtualenv Python points at the test's interpreter.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
APP = "app1"
FORBIDDEN_APP = "forbidden0app"

yaml = pytest.importorskip("yaml")


def action() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
    return data


def run_py() -> ModuleType:
    spec = importlib.util.spec_from_file_location("action_run", ROOT / "action" / "run.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def evaluate(
    value: str, inputs: dict[str, str], steps: dict[str, dict[str, str]] | None = None
) -> str:
    def one(match: re.Match[str]) -> str:
        expr = match.group(1).strip()
        if expr == "github.action_path":
            return str(ROOT)
        if expr.startswith("steps."):
            step, _, name = expr.removeprefix("steps.").split(".", 2)
            return (steps or {}).get(step, {}).get(name, "")
        assert expr.startswith("inputs."), expr
        return inputs[expr.removeprefix("inputs.")]

    return re.sub(r"\$\{\{(.*?)\}\}", one, value)


def test_action_is_composite_with_the_documented_inputs_and_outputs() -> None:
    spec = action()
    assert spec["runs"]["using"] == "composite"
    assert {"keys", "app-id", "regions", "verify", "disconnect", "audit-log", "extra-args"} <= set(
        spec["inputs"]
    )
    assert {"exit-code", "revoked", "failed", "problems", "audit-log"} <= set(spec["outputs"])
    for step in spec["runs"]["steps"]:
        assert "${{" not in step.get("run", ""), "inputs reach scripts through env only"
        assert "secret" not in str(step).lower(), "credentials come from the job's env"
    install = spec["runs"]["steps"][0]["run"]
    assert '-m venv "$RUNNER_TEMP/revoker-venv"' in install
    assert 'pip install --quiet --disable-pip-version-check "$ACTION_PATH"' in install


ARTIFACT_URL = "https://github.com/o/r/actions/runs/1/artifacts/2"


def run_action(
    tmp_path: Path,
    with_: dict[str, str],
    job_env: dict[str, str],
    uploaded: list[Path] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the action's steps in ``tmp_path`` (the workspace) as a runner would.

    GITHUB_STEP_SUMMARY and GITHUB_OUTPUT are tmp_path/summary.md and outputs.txt;
    the paths the upload step would upload are added to ``uploaded``; a step whose
    ``if`` needs a step output that is empty is skipped.
    """
    uploaded = [] if uploaded is None else uploaded
    spec = action()
    inputs = {name: str(i.get("default", "")) for name, i in spec["inputs"].items()}
    inputs.update(with_)
    install, *steps = spec["runs"]["steps"]
    assert install["name"] == "Install revoker"  # checked, not run: see the module docstring
    venv_bin = tmp_path / "runner-temp" / "revoker-venv" / "bin"
    venv_bin.mkdir(parents=True, exist_ok=True)
    (venv_bin / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (venv_bin / "python").chmod(0o755)
    result = None
    failed = False
    outputs_of: dict[str, dict[str, str]] = {}
    for step in steps:
        if failed and "always()" not in str(step.get("if", "")):
            continue
        if "uses" in step:
            # The upload is GitHub's own action: checked, not run; it would answer a URL.
            assert step["uses"] == "actions/upload-artifact@v7"
            assert "always()" in step["if"], "the evidence is uploaded when the run failed too"
            outputs_of["revoke"] = outputs(tmp_path) if (tmp_path / "outputs.txt").exists() else {}
            if not inputs.get("artifact-name") or not outputs_of["revoke"].get("audit-log"):
                continue
            paths = evaluate(step["with"]["path"], inputs, outputs_of).split()
            uploaded.extend(Path(p) for p in paths)
            outputs_of[step["id"]] = {"artifact-url": ARTIFACT_URL}
            continue
        if "if" in step:
            needed = re.findall(r"steps\.(\w+)\.outputs\.([\w-]+) != ''", step["if"])
            if any(not outputs_of.get(s, {}).get(n) for s, n in needed):
                continue
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(tmp_path),
            **job_env,
            "RUNNER_TEMP": str(tmp_path / "runner-temp"),
            "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
            "GITHUB_OUTPUT": str(tmp_path / "outputs.txt"),
            **{k: evaluate(str(v), inputs, outputs_of) for k, v in step.get("env", {}).items()},
        }
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if step.get("id") == "revoke" or result is None:
            result = done  # the action's exit code and output are the revoke step's
        failed = failed or done.returncode != 0
    assert result is not None
    return result


def outputs(tmp_path: Path) -> dict[str, str]:
    """GITHUB_OUTPUT read as the runner reads it: ``name=value`` lines and
    ``name<<DELIMITER`` blocks; a later line for a name wins."""
    lines = (tmp_path / "outputs.txt").read_text().splitlines()
    values: dict[str, str] = {}
    index = 0
    while index < len(lines):
        line = lines[index]
        heredoc = "<<" in line and ("=" not in line or line.index("<<") < line.index("="))
        if heredoc:
            name, delimiter = line.split("<<", 1)
            end = lines.index(delimiter, index + 1)
            values[name] = "\n".join(lines[index + 1 : end])
            index = end + 1
        else:
            name, value = line.split("=", 1)
            values[name] = value
            index += 1
    return values


@pytest.mark.integration
def test_action_masks_keys_writes_summary_annotations_and_outputs(tmp_path: Path) -> None:
    from revoker.emulator.process import EmulatorProcess

    keys = [f"actionKey-{i:04d}-secret" for i in range(3)]
    seed = tmp_path / "seed.csv"
    seed.write_text("stream_key,app_id\n" + "".join(f"{k},{APP}\n" for k in keys[:2]))
    keys_file = tmp_path / "keys.csv"
    keys_file.write_text(
        f"stream_key,app_id\n{keys[0]},{APP}\n{keys[1]},{APP}\n{keys[2]},{FORBIDDEN_APP}\n"
    )
    (tmp_path / "audit").mkdir()
    summary = tmp_path / "summary.md"
    with EmulatorProcess(
        "--seed-keys", str(seed), "--forbidden-app", FORBIDDEN_APP, "--delete-rps", "0"
    ) as emu:
        with_ = {"keys": "keys.csv", "audit-log": "audit/revoker.jsonl"}
        uploaded: list[Path] = []
        result = run_action(tmp_path, with_, emu.client_env(), uploaded)
        left = {k["key"] for k in emu.state()["keys"]}
    assert result.returncode == 1, result.stdout + result.stderr  # the step fails: 8 not done
    assert left == set()
    lines = result.stdout.splitlines()
    masks = [line for line in lines if line.startswith("::add-mask::")]
    assert {m.removeprefix("::add-mask::") for m in masks} == set(keys)
    assert lines[: len(masks)] == masks, "every key is masked before anything else is printed"
    rest = "\n".join(lines[len(masks) :]) + result.stderr
    assert not any(k in rest for k in keys)
    # revoker's own output is relayed with workflow commands stopped
    start = next(i for i, line in enumerate(lines) if line.startswith("::stop-commands::"))
    token = lines[start].removeprefix("::stop-commands::")
    assert len(token) >= 32
    assert f"::{token}::" in lines[start + 1 :]
    errors = [line for line in lines if line.startswith("::error ")]
    assert len(errors) == 4  # one per failed (app, region) group
    assert all(f"app {FORBIDDEN_APP}%2C region" in e for e in errors)
    assert all("2 task(s) not done (failed 2)" in e for e in errors)  # revoke and verify
    assert summary.read_text().startswith("## revoker audit report\n")
    values = outputs(tmp_path)
    assert values["exit-code"] == "1"
    # One pass per output, never summed over passes: 3 keys x 4 regions = 12 pairs.
    assert values["tasks"] == "12"
    assert values["revoked"] == "8"
    assert values["failed"] == "4"
    assert values["verified-absent"] == "8"
    assert values["verify-failed"] == "4"
    assert values["still-present"] == "0"
    assert values["streams-cut"] == "0"
    assert values["problems"] == "8"  # the failed DELETE and the failed GET of each pair
    assert values["keys"] == "3"
    assert values["keys-revoked"] == "2"
    assert values["not-found"] == values["keys-not-found"] == "0"
    from_step = {n for n, o in action()["outputs"].items() if "steps.revoke." in o["value"]}
    assert set(values) == from_step, "every documented output of the step is set, no other"
    summary_json = json.loads(Path(values["summary-json"]).read_text())
    assert summary_json["schema_version"] == 1
    assert summary_json["revoke"]["counts"]["failed"] == 4
    assert values["audit-log"] == str(tmp_path / "audit" / "revoker.jsonl")
    # The page beside the audit log, both uploaded (the step failed), linked from the summary.
    page = tmp_path / "audit" / "revoker.html"
    assert values["report-html"] == str(page)
    assert uploaded == [tmp_path / "audit" / "revoker.jsonl", page]
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert "8 of 24 tasks NOT done" in html
    assert "tamper check (--verify)" in html
    assert not any(k in html for k in keys)
    assert f"**Incident report page:** [download the artifact]({ARTIFACT_URL})" in (
        summary.read_text()
    )
    assert "`revoker.html`" in summary.read_text()


def test_a_hostile_message_cannot_start_a_workflow_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    module = run_py()
    hostile = "oops\n::add-path::/tmp/evil\r\n::set-output name=exit-code::0"
    problem = {"app_id": "a", "region": "na", "outcome": "failed", "message": hostile}
    module.annotate([problem])
    module.relay(hostile, "t0k3n")
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("::error ")
    assert "%0A::add-path::/tmp/evil%0D%0A::set-output" in out[0]
    assert out[1:] == ["::stop-commands::t0k3n", *hostile.splitlines(), "::t0k3n::"]


def test_annotations_are_aggregated_to_at_most_ten(capsys: pytest.CaptureFixture[str]) -> None:
    module = run_py()
    problems = [
        {"app_id": f"app{i}", "region": "na", "outcome": "failed", "message": "x"}
        for i in range(15)
        for _ in range(i + 1)
    ]
    module.annotate(problems)
    errors = capsys.readouterr().out.splitlines()
    assert len(errors) == 10
    assert "app app14%2C region na" in errors[0]  # the biggest group first
    assert "6 more (app, region) groups" in errors[-1]


def test_step_summary_is_cut_below_one_mebibyte_with_a_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    run_py().write_summary("| row | é |\n" * 200_000)
    data = summary.read_bytes()
    assert len(data) < 1024 * 1024
    assert data.decode("utf-8").endswith("over the audit log.\n")
    assert "**Cut here:**" in data.decode("utf-8")


def test_outputs_count_one_pass_each_never_a_sum_over_passes() -> None:
    counts = {
        "revoke": {"total": {"revoked": 10, "failed": 2}},
        "verify": {"total": {"absent": 10, "failed": 2}},
        "disconnect": {"total": {"disconnected": 3, "failed": 1}},
    }
    values = run_py().pass_outputs(counts)
    assert values["tasks"] == "12"  # the revoke pass's pairs, not 12 + 12 + 4
    assert (values["revoked"], values["failed"], values["not-attempted"]) == ("10", "2", "0")
    assert (values["verified-absent"], values["verify-failed"]) == ("10", "2")
    assert (values["streams-cut"], values["disconnect-failed"]) == ("3", "1")
    assert values["still-present"] == "0"


def test_the_summary_links_only_a_plain_https_artifact_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("REPORT_HTML", "/w/revoker-audit.html")
    module = run_py()
    for url in ("javascript:alert(1)", "https://x/a) [evil](https://evil", "http://x/a"):
        monkeypatch.setenv("ARTIFACT_URL", url)
        module.link_summary()
    assert not summary.exists()
    monkeypatch.setenv("ARTIFACT_URL", ARTIFACT_URL)
    module.link_summary()
    assert f"]({ARTIFACT_URL}) and open `revoker-audit.html`" in summary.read_text()


def test_a_newline_in_the_audit_log_input_cannot_inject_an_output(tmp_path: Path) -> None:
    (tmp_path / "keys.csv").write_text("stream_key,app_id\nsome-stream-key-0001,app1\n")
    injected = "revoker.jsonl\nexit-code=0"
    result = run_action(tmp_path, {"keys": "keys.csv", "audit-log": injected}, {})  # no credentials
    assert result.returncode == 2, result.stdout + result.stderr
    values = outputs(tmp_path)
    assert values["exit-code"] == "2"
    assert values["audit-log"] == str(tmp_path / injected)


def test_an_unbalanced_quote_in_extra_args_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "keys.csv").write_text("stream_key,app_id\nsome-stream-key-0001,app1\n")
    result = run_action(tmp_path, {"keys": "keys.csv", "extra-args": "--rule 'agora"}, {})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "::error title=revoker::the 'extra-args' input is not valid shell quoting" in (
        result.stdout
    )
    assert outputs(tmp_path)["exit-code"] == "2"
