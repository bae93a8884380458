"""The files in examples/: they parse, they hang together, and their commands work.

The GitHub Actions workflow's ``run:`` scripts are extracted from the YAML and
run verbatim with bash (as Actions does: ``bash -eo pipefail``) against the
emulator; only the job's ``env:`` block, whose values are ``${{ }}``
expressions, is mirrored by the test (secrets -> the emulator's credentials).
Its revoke step is revoker's own action (``uses: ./``), run by
tests/action/test_action.py's ``run_action`` as a runner runs it.
The Kubernetes Job's container command is extracted and run once per index
with ``JOB_COMPLETION_INDEX`` set, /keys and /audit pointed at temp dirs.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
BIN = str(Path(sys.executable).parent)
APP = "app1"

yaml = pytest.importorskip("yaml")


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def workflow() -> dict[str, Any]:
    data: dict[str, Any] = load(EXAMPLES / "github-actions" / "revoke.yml")
    return data


def test_workflow_is_dispatched_by_hand_with_keys_and_uses_secrets_via_env() -> None:
    wf = workflow()
    on = wf.get("on", wf.get(True))  # YAML 1.1 reads a bare `on` as true
    inputs = on["workflow_dispatch"]["inputs"]
    assert {"keys", "keys_artifact", "regions", "disconnect"} <= set(inputs)
    job = wf["jobs"]["revoke"]
    assert job["env"]["AGORA_CUSTOMER_SECRET"] == "${{ secrets.AGORA_CUSTOMER_SECRET }}"
    assert job["env"]["AGORA_CUSTOMER_ID"] == "${{ secrets.AGORA_CUSTOMER_ID }}"
    runs = "\n".join(step.get("run", "") for step in job["steps"])
    assert "secrets." not in runs  # secrets only through env, never on a command line
    (revoke,) = (s for s in job["steps"] if s.get("uses") == "./")  # revoker's action.yml
    assert revoke["with"]["keys"] == "keys.txt"
    assert revoke["with"]["audit-log"] == "revoker-audit.jsonl"
    uploads = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/upload-")]
    assert uploads
    assert "revoker-audit.jsonl" in uploads[0]["with"]["path"]
    assert uploads[0]["if"] == "${{ always() }}"


@pytest.mark.integration
def test_workflow_run_steps_revoke_against_the_emulator(tmp_path: Path) -> None:
    from revoker.emulator.process import EmulatorProcess
    from tests.action.test_action import outputs, run_action

    job = workflow()["jobs"]["revoke"]
    scripts = [(step["name"], step["run"]) for step in job["steps"] if "run" in step]
    assert [name for name, _ in scripts] == ["Collect the keys"]
    (action_step,) = (step for step in job["steps"] if step.get("uses") == "./")
    dispatch = {"inputs.regions": "na,eu,ap,cn", "inputs.disconnect": "true"}
    with_ = {  # the step's `with:` as the runner passes it: strings, expressions evaluated
        k: str(v).lower()
        if isinstance(v, bool)
        else re.sub(r"\$\{\{ (\S+) \}\}", lambda m: dispatch[m.group(1)], str(v))
        for k, v in action_step["with"].items()
    }
    seed = tmp_path / "seed.csv"
    seed.write_text("stream_key,channel\nleakedKey-00000001,c\nleakedKey-00000002,c\n")
    live = tmp_path / "live.csv"
    live.write_text(f"stream_key,app_id,region,channel\nleakedKey-00000001,{APP},eu,c\n")
    with EmulatorProcess(
        "--seed-keys", str(seed), "--live-streams", str(live), "--app-id", APP
    ) as emu:
        env = {
            "PATH": BIN + os.pathsep + os.environ.get("PATH", ""),
            "HOME": str(tmp_path),
            **emu.client_env(),
            # job.env, with its ${{ }} expressions evaluated for this dispatch:
            "AGORA_APP_ID": APP,
            "AGORA_REGIONS": "na,eu,ap,cn",
            "REVOKER_AUDIT_LOG": job["env"]["REVOKER_AUDIT_LOG"],
            "REVOKER_LOG_FORMAT": job["env"]["REVOKER_LOG_FORMAT"],
            "KEYS_INPUT": "leakedKey-00000001\nleakedKey-00000002\n",
        }
        for name, script in scripts:
            assert "${{" not in script, name  # runs verbatim
            result = subprocess.run(
                ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
                cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
            )  # fmt: skip
            assert result.returncode == 0, (name, result.stderr)
        result = run_action(tmp_path, with_, env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "leakedKey-00000001" not in result.stderr  # logs name keys by hint only
        state = emu.state()
    assert state["keys"] == []
    assert state["streams"] == []
    values = outputs(tmp_path)
    assert (values["exit-code"], values["revoked"], values["problems"]) == ("0", "8", "0")
    report = subprocess.run(
        [f"{BIN}/revoker", "report", "--format", "json", str(tmp_path / "revoker-audit.jsonl")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    counts = json.loads(report.stdout)["counts"]
    assert counts["verify"]["total"] == {"absent": 8}
    assert counts["disconnect"]["total"] == {"disconnected": 1}
    markdown = (tmp_path / "summary.md").read_text()
    assert markdown.startswith("## revoker audit report\n")
    assert "| **total** |" in markdown
    assert (tmp_path / "revoker-audit.jsonl").stat().st_mode & 0o077 == 0


def test_workflow_collect_step_keeps_an_artifact_key_without_final_newline_apart(
    tmp_path: Path,
) -> None:
    """The artifact's last key and the first pasted key stay two keys."""
    (step,) = [
        s for s in workflow()["jobs"]["revoke"]["steps"] if s.get("name") == "Collect the keys"
    ]
    (tmp_path / "keys-artifact").mkdir()
    (tmp_path / "keys-artifact" / "keys.txt").write_text("artifactKey-1\nartifactKey-2")
    env = {"PATH": os.environ.get("PATH", ""), "KEYS_INPUT": "pastedKey-3"}
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    keys = [line for line in (tmp_path / "keys.txt").read_text().splitlines() if line.strip()]
    assert keys == ["artifactKey-1", "artifactKey-2", "pastedKey-3"]


def k8s_job() -> dict[str, Any]:
    data: dict[str, Any] = load(EXAMPLES / "kubernetes" / "revoke-indexed-job.yaml")
    return data


def test_indexed_job_shard_count_matches_completions_and_logs_per_pod() -> None:
    job = k8s_job()
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    container = spec["template"]["spec"]["containers"][0]
    command = " ".join(container["args"])
    assert f"--shard-count {spec['completions']}" in command
    assert "${JOB_COMPLETION_INDEX}" in command
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    log = re.search(r"--audit-log \"?(\S+?)\"?(\s|$)", command)
    assert log is not None
    assert "/" + log.group(1).split("/")[1] in mounts
    volumes = {v["name"]: v for v in spec["template"]["spec"]["volumes"]}
    assert "persistentVolumeClaim" in volumes[mounts["/audit"]]
    env = {e["name"]: e for e in container["env"]}
    assert "secretKeyRef" in env["AGORA_CUSTOMER_SECRET"]["valueFrom"]


@pytest.mark.integration
def test_indexed_job_pods_together_revoke_everything(tmp_path: Path) -> None:
    from revoker.emulator.process import EmulatorProcess

    job = k8s_job()
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["sh", "-c"]
    script = container["args"][0].replace("/keys/", f"{tmp_path}/keys/")
    script = script.replace("/audit/", f"{tmp_path}/audit/")
    (tmp_path / "keys").mkdir()
    (tmp_path / "audit").mkdir()
    keys = [f"podKey-{i:05d}-abc" for i in range(30)]
    (tmp_path / "keys" / "keys.csv").write_text("stream_key\n" + "\n".join(keys) + "\n")
    seed = tmp_path / "seed.csv"
    seed.write_text("stream_key\n" + "\n".join(keys) + "\n")
    with EmulatorProcess("--seed-keys", str(seed), "--app-id", APP) as emu:
        for index in range(job["spec"]["completions"]):
            env = {**os.environ, **emu.client_env(), "AGORA_APP_ID": APP,
                   "JOB_COMPLETION_INDEX": str(index)}  # fmt: skip
            result = subprocess.run(
                ["sh", "-c", script.replace("exec revoker", shlex.quote(f"{BIN}/revoker"))],
                env=env, capture_output=True, text=True, timeout=120, check=False,
            )  # fmt: skip
            assert result.returncode == 0, result.stderr
        assert emu.state()["keys"] == []
    logs = sorted((tmp_path / "audit").glob("revoke-*.jsonl"))
    assert [p.name for p in logs] == [f"revoke-{i}.jsonl" for i in range(4)]
    report = subprocess.run(
        [f"{BIN}/revoker", "report", "--format", "json", *map(str, logs)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert report.returncode == 0
    assert json.loads(report.stdout)["counts"]["revoke"]["total"] == {"revoked": 120}


def test_cron_line_uses_flock_an_env_file_and_prune() -> None:
    lines = [
        line
        for line in (EXAMPLES / "cron" / "revoker-prune.cron").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert len(lines) == 1
    fields = lines[0].split(None, 6)
    assert len(fields) == 7  # m h dom mon dow user command (/etc/cron.d format)
    assert all(re.fullmatch(r"[\d*/,-]+", f) for f in fields[:5])
    command = fields[6]
    assert command.startswith("flock -n ")
    assert ". /etc/revoker/env" in command
    assert "revoker -q prune --expired --resume" in command
    assert re.search(r"(?<!\\)%", command) is None  # a bare % ends the command in cron


# The current major of each action the examples and the README use (node24 runtime).
CURRENT_MAJORS = {
    "actions/checkout": 6,
    "actions/setup-python": 6,
    "actions/upload-artifact": 7,
    "actions/download-artifact": 8,
}
# Files the README's commands write, not inputs to ship.
OUTPUT_FILES = {"new-keys.csv"}


def test_workflows_and_readme_use_the_current_major_of_each_action() -> None:
    texts = {p: p.read_text(encoding="utf-8") for p in EXAMPLES.rglob("*.yml")}
    for other in ("README.md", "action.yml"):
        texts[ROOT / other] = (ROOT / other).read_text(encoding="utf-8")
    seen = set()
    for path, text in texts.items():
        for action, ref in re.findall(r"uses:\s*([^\s@]+/[^\s@]+)@(.*)", text):
            if action == "<owner>/revoker":
                assert "commit SHA" in ref, f"{path}: pin revoker by commit SHA, not {ref}"
                seen.add(action)
                continue
            ref = ref.split()[0]
            assert action in CURRENT_MAJORS, f"{path}: {action}@{ref} has no known major"
            assert ref == f"v{CURRENT_MAJORS[action]}", f"{path}: {action}@{ref}"
            seen.add(action)
    assert seen == {*CURRENT_MAJORS, "<owner>/revoker"}
    assert "@v0" not in texts[ROOT / "README.md"].replace("no `@v0`", "")


def test_every_input_file_the_readme_names_is_an_example(tmp_path: Path) -> None:
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    text = "\n".join(p.read_text(encoding="utf-8") for p in docs)
    named = set(re.findall(r"(?<![\w/.-])([\w-]+\.(?:csv|txt))\b", text)) - OUTPUT_FILES
    assert {"leaked.csv", "leaked.txt", "live.csv", "inventory.txt", "keys.csv"} <= named
    missing = sorted(name for name in named if not (EXAMPLES / name).is_file())
    assert not missing, f"named in the README or docs/, not in examples/: {missing}"
    env = {**os.environ, "AGORA_CUSTOMER_ID": "c", "AGORA_CUSTOMER_SECRET": "s"}
    for name in sorted(named - {"live.csv"}):
        run = subprocess.run(
            [sys.executable, "-m", "revoker", "revoke", name, "--app-id", APP, "--dry-run",
             "--audit-log", str(tmp_path / f"{name}.jsonl")],
            cwd=EXAMPLES, env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if name == "keys.txt":  # the README's example of a refused key
            assert run.returncode == 2
            assert "keys.txt:2: invisible character U+200B at column 8" in run.stderr
        else:
            assert run.returncode == 0, f"{name}: {run.stderr}"


@pytest.mark.integration
def test_example_live_streams_start_in_the_emulator_and_are_cut_by_a_revoke(
    tmp_path: Path,
) -> None:
    from revoker.emulator.process import EmulatorProcess

    with EmulatorProcess(
        "--app-id", "9d2498880e934632b38b0a68fa2f1622",
        "--seed-keys", str(EXAMPLES / "keys.csv"), "--live-streams", str(EXAMPLES / "live.csv"),
    ) as emu:  # fmt: skip
        assert len(emu.state()["streams"]) == 4
        env = {**os.environ, **emu.client_env()}
        run = subprocess.run(
            [sys.executable, "-m", "revoker", "revoke", "leaked.csv", "--verify",
             "--disconnect", "--output", "json", "--audit-log", str(tmp_path / "a.jsonl")],
            cwd=EXAMPLES, env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout)["disconnect"]["counts"]["disconnected"] == 3


def test_dockerfile_installs_the_wheel_on_slim_python_as_non_root_with_revoker_entrypoint() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    instructions = [line.split(None, 1) for line in text.splitlines() if line[:1].isupper()]
    assert "ARG PYTHON_IMAGE=python:3.12-slim" in text
    assert [i for i in instructions if i[0] == "FROM"][-1] == ["FROM", "${PYTHON_IMAGE}"]
    assert "pip wheel --no-cache-dir --no-deps --wheel-dir /wheels ." in text
    assert "pip install --no-cache-dir /tmp/wheels/revoker-*.whl" in text
    users = [i[1] for i in instructions if i[0] == "USER"]
    assert users == ["10001:10001"], "runs as the non-root user the Job's securityContext names"
    assert instructions[-2:] == [["ENTRYPOINT", '["revoker"]'], ["CMD", '["--help"]']]
    pod = k8s_job()["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == 10001
    assert "ARG" not in [i[0] for i in instructions if "SECRET" in i[-1]], "no secret build args"


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=BIN)
    if hadolint is None:
        pytest.skip("hadolint not installed (make install brings it)")
    result = subprocess.run(
        [hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
