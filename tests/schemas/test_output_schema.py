"""`--output json` of every command, from real runs against the emulator, validates
against the JSON Schema shipped in the package (revoker/schemas/output.schema.json)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest

from revoker.emulator.process import EmulatorProcess
from tests.reliability.helpers import revoker_env, run_revoker

jsonschema = pytest.importorskip("jsonschema")

pytestmark = pytest.mark.integration

APP = "app1"
FORBIDDEN_APP = "forbidden0app"
LIVE = "liveKey-0001-schema"
GONE = "goneKey-0002-schema"
NOWHERE = "neverKey-0003-schema"


def shipped_schema() -> dict[str, Any]:
    """The schema as an installed revoker carries it (package data, not the repo)."""
    text = files("revoker").joinpath("schemas", "output.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def closed(schema: Any) -> Any:
    """The schema with every object that lists its properties closed to others: the
    shipped schema lets readers meet new fields, the test wants each one documented."""
    schema = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


def validate(stdout: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(stdout)
    schema = shipped_schema()
    for variant, where in ((schema, ""), (closed(schema), " (closed)")):
        validator = jsonschema.Draft202012Validator(variant)
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]
        # A new field fails the closed check until it is documented in the schema.
        assert not errors, (
            f"--output json{where} does not match revoker/schemas/output.schema.json "
            f"(document a new field there and in docs/json-output.md): {errors}"
        )
    return document


def test_the_shipped_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(shipped_schema())


def test_the_schema_refuses_a_summary_with_a_zero_count_left_out() -> None:
    schema = shipped_schema()
    summary = {
        "tasks": 1,
        "counts": {"revoked": 1},
        "per_region": {"na": {"revoked": 1}},
        "extra": {},
        "failures": [],
    }
    pass_schema = {"$defs": schema["$defs"], "$ref": "#/$defs/pass"}
    assert not jsonschema.Draft202012Validator(pass_schema).is_valid(summary)


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[EmulatorProcess]:
    seed = tmp_path / "seed.csv"
    seed.write_text(f"stream_key,app_id\n{LIVE},{APP}\n{GONE},{APP}\n", encoding="utf-8")
    live = tmp_path / "live.csv"
    live.write_text(f"stream_key,app_id,region\n{LIVE},{APP},na\n", encoding="utf-8")
    with EmulatorProcess(
        "--seed-keys", str(seed), "--live-streams", str(live), "--forbidden-app", FORBIDDEN_APP
    ) as emu:
        yield emu


def keys_file(tmp_path: Path, *rows: tuple[str, str]) -> Path:
    path = tmp_path / "keys.csv"
    path.write_text("stream_key,app_id\n" + "".join(f"{k},{a}\n" for k, a in rows))
    return path


def test_every_commands_json_output_validates_against_the_shipped_schema(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    env = revoker_env(emulator.client_env())
    keys = keys_file(tmp_path, (LIVE, APP), (NOWHERE, APP), (GONE, FORBIDDEN_APP))
    audit = str(tmp_path / "audit.jsonl")
    seen: dict[str, dict[str, Any]] = {}

    def run(name: str, *args: str, code: int) -> None:
        result = run_revoker(*args, "--output", "json", env=env)
        assert result.returncode == code, result.stderr[-2000:]
        seen[name] = validate(result.stdout)

    run("streams", "streams", str(keys), code=1)
    run("show", "show", "--app-id", APP, GONE, code=0)
    run("dry run", "revoke", str(keys), "--dry-run", "--audit-log", audit, code=0)
    # Failures (a 403 app), a key found nowhere, a live stream cut, then verified.
    run("revoke", "revoke", str(keys), "--verify", "--disconnect", "--audit-log", audit, code=1)
    run("verify", "verify", str(keys), "--audit-log", str(tmp_path / "verify.jsonl"), code=1)
    run("prune", "prune", "--expired", "--app-id", APP, "--key", GONE,
        "--audit-log", str(tmp_path / "prune.jsonl"), code=0)  # fmt: skip
    run("rotate", "rotate", "--app-id", APP, "--key", GONE, "--new-keys-file",
        str(tmp_path / "new-keys.csv"), "--audit-log", str(tmp_path / "rotate.jsonl"),
        code=0)  # fmt: skip

    revoke = seen["revoke"]
    assert set(revoke) >= {"revoke", "disconnect", "verify"}
    assert revoke["disconnect"]["counts"]["disconnected"] == 1
    # Zero counts are there, not left out: nothing was still present on verify.
    assert revoke["verify"]["counts"]["present"] == 0
    assert revoke["revoke"]["counts"]["not_attempted"] == 0
    assert revoke["keys"]["not_found"] == 1
    assert seen["rotate"]["rotate"]["counts"]["rotated"] == 4
    assert {doc["schema_version"] for doc in seen.values()} == {1}
