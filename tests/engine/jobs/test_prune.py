"""prune: GET every pair, DELETE only the expired / too-old ones; durations; dry run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from click.testing import CliRunner

from revoker.cli import main
from revoker.durations import format_duration, parse_duration
from revoker.engine.jobs.prune import Rule
from revoker.errors import UsageError
from tests.conftest import BASE, NO_ECHO

APP = "app1"
NOW = 1_700_000_000


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90d", 90 * 86400), ("12h", 43200), ("30min", 1800), ("45s", 45), ("2w", 1209600),
     ("1d12h", 129600), (" 7D ", 604800), ("6mo", 180 * 86400), ("1h30min", 5400)],
)  # fmt: skip
def test_parse_duration_accepts_units(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "90", "d", "1.5d", "-3d", "0d", "3x", "3 d", "12h30"])
def test_parse_duration_rejects_malformed(text: str) -> None:
    with pytest.raises(UsageError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["3m", "1h30m", "3M"])
def test_a_bare_m_is_refused_as_ambiguous_minutes_or_months(text: str) -> None:
    with pytest.raises(UsageError, match="'m' is ambiguous; write 'min' for minutes or 'mo'"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["9" * 400 + "d", "36501d", "1300mo", "9999999999999s"])
def test_a_duration_over_100_years_is_refused_at_parse_time(text: str) -> None:
    with pytest.raises(UsageError, match="at most 100 years"):
        parse_duration(text)
    assert parse_duration("36500d") == 36500 * 86400


def test_format_duration_round_trips() -> None:
    for text in ("90d", "12h", "30min", "1d12h", "45s", "1h30min"):
        assert format_duration(parse_duration(text)) == text


@pytest.mark.parametrize(
    ("created", "expires_after", "matches", "why"),
    [
        (NOW - 100, 100, True, "expired"),  # exactly at the boundary: expired
        (NOW - 100, 101, False, "not expired yet"),
        (NOW - 10**6, 0, False, "never expires"),
        ("bad", 5, None, "could not check: createdAt is other text, not Unix seconds as a string"),
        (NOW - 100, "60", None, "could not check: expiresAfter is a string, not an integer"),
        (NOW - 100, 60.0, None, "could not check: expiresAfter is a float, not an integer"),
        (NOW - 100, True, None, "could not check: expiresAfter is a bool, not an integer"),
        (NOW - 100, None, None, "could not check: expiresAfter is missing, not an integer"),
    ],
    ids=["exact-boundary", "not-yet", "never", "garbage-created", "string-60", "float", "bool",
         "missing"],
)  # fmt: skip
def test_expired_rule_never_matches_a_field_of_the_wrong_type(
    created: Any, expires_after: Any, matches: bool | None, why: str
) -> None:
    rule = Rule(expired=True, now=NOW)
    data = {"createdAt": str(created), "expiresAfter": expires_after}
    assert rule.check(data) == (matches, why)


def test_older_than_rule_compares_created_at_with_now_minus_duration() -> None:
    rule = Rule(older_than=3600, now=NOW)
    assert rule.check({"createdAt": str(NOW - 3600), "expiresAfter": 0})[0] is True
    assert rule.check({"createdAt": str(NOW - 3599), "expiresAfter": 0})[0] is False
    assert rule.check(None) == (False, "no key data in the answer")


@pytest.mark.parametrize(
    "args",
    [[], ["--expired", "--older-than", "1d"], ["--older-than", "soon"]],
    ids=["neither", "both", "bad-duration"],
)
def test_prune_needs_exactly_one_valid_rule(args: list[str], monkeypatch: Any) -> None:
    monkeypatch.setenv("AGORA_CUSTOMER_ID", "cid")
    monkeypatch.setenv("AGORA_CUSTOMER_SECRET", "secret")
    result = CliRunner().invoke(main, ["prune", "--key", "k" * 16, "--app-id", APP, *args])
    assert result.exit_code == 2, result.output
    assert "error" in result.output


def test_prune_older_than_3m_is_refused_before_sending(monkeypatch: Any) -> None:
    monkeypatch.setenv("AGORA_CUSTOMER_ID", "cid")
    monkeypatch.setenv("AGORA_CUSTOMER_SECRET", "secret")
    with respx.mock(assert_all_called=False) as api:
        route = api.route().respond(200, json={"status": "success"})
        result = CliRunner().invoke(
            main, ["prune", "--key", "k" * 16, "--app-id", APP, "--older-than", "3m"]
        )
    assert result.exit_code == 2, result.output
    assert "write 'min' for minutes or 'mo' for months" in result.output
    assert route.call_count == 0


EXPIRED_LONG_AGO = {"streamKey": "k" * 16, "channel": "c", "uid": "1", "createdAt": "1000",
                    "expiresAfter": 60}  # fmt: skip


@pytest.mark.usefixtures("creds")
@pytest.mark.parametrize("rule", [["--expired"], ["--older-than", "1d"]], ids=["expired", "old"])
@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, json={"status": "success", "data": EXPIRED_LONG_AGO}, headers=NO_ECHO),
        httpx.Response(200, text="<html>expired</html>"),
    ],
    ids=["200-no-request-id", "html-200"],
)
def test_a_get_answered_by_a_200_that_is_not_the_apis_never_leads_to_a_delete(
    api: respx.MockRouter, tmp_path: Path, rule: list[str], answer: httpx.Response
) -> None:
    key_url = f"/na/v1/projects/{APP}/rtls/ingress/streamkeys/{'k' * 16}"
    api.get(key_url).mock(return_value=answer)
    delete = api.delete(url__regex=".*")
    audit = tmp_path / "prune.jsonl"
    result = CliRunner().invoke(
        main,
        ["prune", *rule, "--key", "k" * 16, "--app-id", APP, "--regions", "na", "--base-url",
         BASE, "--max-attempts", "1", "--audit-log", str(audit)],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert not delete.called
    (query,) = (r for r in records(audit) if r.get("event") in ("query", "revoke"))
    assert (query["event"], query["outcome"]) == ("query", "failed")
    assert query["message"] == "not an answer of the Media Gateway API (check --base-url)"
    assert "matched" not in query


@pytest.mark.usefixtures("creds")
@pytest.mark.parametrize(
    "data",
    [{**EXPIRED_LONG_AGO, "expiresAfter": "60"}, {**EXPIRED_LONG_AGO, "createdAt": 1000.0}],
    ids=["expiresAfter-string", "createdAt-float"],
)
def test_prune_expired_never_deletes_on_a_field_of_the_wrong_type(
    api: respx.MockRouter, tmp_path: Path, data: dict[str, Any]
) -> None:
    key_url = f"/na/v1/projects/{APP}/rtls/ingress/streamkeys/{'k' * 16}"
    api.get(key_url).respond(200, json={"status": "success", "data": data})
    delete = api.delete(url__regex=".*")
    audit = tmp_path / "prune.jsonl"
    result = CliRunner().invoke(
        main,
        ["prune", "--expired", "--key", "k" * 16, "--app-id", APP, "--regions", "na",
         "--base-url", BASE, "--max-attempts", "1", "--audit-log", str(audit)],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert not delete.called
    (query,) = (r for r in records(audit) if r.get("event") in ("query", "revoke"))
    assert (query["outcome"], query["matched"]) == ("failed", None)
    assert query["message"].startswith("could not check: ")


# against the emulator -----------------------------------------------------------------


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[tuple[Any, Path, dict[str, str]]]:
    """Keys: expired in na+eu, expired only in ap, never expiring but old, fresh."""
    from revoker.emulator.process import EmulatorProcess

    now = int(time.time())
    seed = tmp_path / "seed.csv"
    seed.write_text(
        "stream_key,app_id,regions,channel,uid,expires_after,created_at\n"
        f"expiredKey-0000001,{APP},na;eu,c1,1,60,{now - 3600}\n"
        f"mixedKey-000000002,{APP},ap,c2,2,60,{now - 3600}\n"
        f"mixedKey-000000002,{APP},cn,c2,2,86400,{now - 3600}\n"
        f"oldForeverKey-0003,{APP},,c3,3,0,{now - 100 * 86400}\n"
        f"freshKey-000000004,{APP},,c4,4,86400,{now - 60}\n",
        encoding="utf-8",
    )
    keys = tmp_path / "inventory.txt"
    keys.write_text(
        "# every key we ever issued\nexpiredKey-0000001\nmixedKey-000000002\n"
        "oldForeverKey-0003\nfreshKey-000000004\nneverStoredKey-005\n",
        encoding="utf-8",
    )
    with EmulatorProcess("--seed-keys", str(seed), "--app-id", APP) as emu:
        yield emu, keys, {**os.environ, **emu.client_env()}


def revoker(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "revoker", "-q", *args],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def pairs(state: dict[str, Any]) -> set[tuple[str, str]]:
    return {(k["key"], k["region"]) for k in state["keys"]}


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.integration
def test_prune_expired_deletes_exactly_the_expired_pairs(
    seeded: tuple[Any, Path, dict[str, str]], tmp_path: Path
) -> None:
    emu, keys, env = seeded
    before = pairs(emu.state())
    audit = tmp_path / "prune.jsonl"
    result = revoker(env, "prune", "--expired", "--app-id", APP, str(keys),
                     "--audit-log", str(audit), "--output", "json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    expired = {("expiredKey-0000001", "na"), ("expiredKey-0000001", "eu"),
               ("mixedKey-000000002", "ap")}  # fmt: skip
    assert pairs(emu.state()) == before - expired
    summary = json.loads(result.stdout)
    assert summary["verdict"] == "every matching pair deleted"
    assert summary["revoke"]["counts"] == {
        "absent": 0,
        "failed": 0,
        "not_attempted": 0,
        "revoked": 3,
    }
    assert summary["query"]["counts"] == {
        "absent": 8,
        "failed": 0,
        "not_attempted": 0,
        "present": 12,
    }
    lines = records(audit)
    task_lines = [r for r in lines if r["event"] in ("query", "revoke")]
    # every matched pair: its query line (matched) and right after it, its revoke line
    for i, line in enumerate(task_lines):
        if line["event"] == "revoke":
            query = task_lines[i - 1]
            assert query["event"] == "query"
            assert query["matched"] is True
            assert (query["region"], query["key_id"]) == (line["region"], line["key_id"])
    unmatched = [r for r in task_lines if r["event"] == "query" and r.get("matched") is False]
    assert len(unmatched) == 9
    assert {r["match_reason"] for r in unmatched} == {"never expires", "not expired yet"}


@pytest.mark.integration
def test_prune_dry_run_queries_but_deletes_nothing(
    seeded: tuple[Any, Path, dict[str, str]], tmp_path: Path
) -> None:
    emu, keys, env = seeded
    before = pairs(emu.state())
    audit = tmp_path / "dry.jsonl"
    result = revoker(env, "prune", "--older-than", "30d", "--dry-run", "--app-id", APP,
                     str(keys), "--audit-log", str(audit))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert pairs(emu.state()) == before
    assert "dry run: queried, nothing deleted" in result.stdout
    assert "dry run: 4 pairs match (older than 30d) and would be deleted" in result.stdout
    events = {r["event"] for r in records(audit)}
    assert "revoke" not in events
    assert emu.stats()["by_method"] == {"GET": 20}  # the emulator answered GETs only
    assert all(r.get("dry_run") for r in records(audit) if r.get("matched"))


@pytest.mark.integration
def test_prune_resume_skips_pairs_already_deleted_or_absent(
    seeded: tuple[Any, Path, dict[str, str]], tmp_path: Path
) -> None:
    _emu, keys, env = seeded
    audit = tmp_path / "prune.jsonl"
    first = revoker(env, "prune", "--older-than", "30d", "--app-id", APP, str(keys),
                    "--audit-log", str(audit), "--output", "json")  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["revoke"]["counts"] == {
        "absent": 0,
        "failed": 0,
        "not_attempted": 0,
        "revoked": 4,
    }
    second = revoker(env, "prune", "--older-than", "30d", "--app-id", APP, str(keys),
                     "--audit-log", str(audit), "--resume", "--output", "json")  # fmt: skip
    assert second.returncode == 0, second.stderr
    summary = json.loads(second.stdout)
    # 20 pairs: 4 deleted + 8 absent are done; the 8 present but too recent are queried again
    assert summary["plan"]["already_done"] == 12
    assert summary["query"]["counts"] == {
        "absent": 0,
        "failed": 0,
        "not_attempted": 0,
        "present": 8,
    }
    assert "revoke" not in summary


@pytest.mark.integration
def test_prune_shard_only_touches_its_keys(
    seeded: tuple[Any, Path, dict[str, str]], tmp_path: Path
) -> None:
    from revoker.engine.input.planner import shard_of

    emu, keys, env = seeded
    before = pairs(emu.state())
    result = revoker(env, "prune", "--older-than", "1s", "--app-id", APP, str(keys),
                     "--shard", "1/2", "--audit-log", str(tmp_path / "a.jsonl"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    deleted = before - pairs(emu.state())
    assert deleted
    assert {shard_of(key, 2) for key, _ in deleted} == {1}
    assert {(k, r) for k, r in before if shard_of(k, 2) == 1} == deleted
