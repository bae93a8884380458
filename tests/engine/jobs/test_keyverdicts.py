"""The verdict per key: revoked somewhere, or found nowhere (never "revoked")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from revoker.engine.jobs import keyverdicts
from revoker.engine.jobs.keyverdicts import KeyLedger
from revoker.models import Outcome, Task, TaskResult, key_hint, key_id

APP = "app1"


def result(key: str, region: str, outcome: Outcome, app: str = APP) -> TaskResult:
    return TaskResult(Task(app, region, key), outcome)


def log_with(path: Path, *records: dict[str, object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_a_key_deleted_in_one_region_and_absent_in_the_others_is_revoked(tmp_path: Path) -> None:
    ledger = KeyLedger("revoke")
    ledger.add(result("key-one-000000", "na", Outcome.REVOKED))
    for region in ("eu", "ap", "cn"):
        ledger.add(result("key-one-000000", region, Outcome.ABSENT))
    verdicts = ledger.settle(tmp_path / "none.jsonl", "run")
    assert (verdicts.keys, verdicts.revoked, verdicts.not_found) == (1, 1, 0)
    assert not verdicts.problems


def test_a_key_absent_everywhere_is_not_found_with_its_hint_and_regions(tmp_path: Path) -> None:
    ledger = KeyLedger("revoke")
    for region in ("na", "eu"):
        ledger.add(result("typo-key-00000", region, Outcome.ABSENT))
    ledger.add(result("real-key-00000", "na", Outcome.REVOKED))
    verdicts = ledger.settle(tmp_path / "none.jsonl", "run")
    assert verdicts.not_found == 1
    assert verdicts.problems
    [found] = verdicts.samples
    assert (found.key_hint, found.key_id) == (key_hint("typo-key-00000"), key_id("typo-key-00000"))
    assert found.regions == ["na", "eu"]
    assert verdicts.apps_not_found == []  # the app has a key that was found


def test_absent_ok_accepts_keys_found_nowhere(tmp_path: Path) -> None:
    ledger = KeyLedger("revoke", absent_ok=True)
    ledger.add(result("gone-key-00000", "na", Outcome.ABSENT))
    verdicts = ledger.settle(tmp_path / "none.jsonl", "run")
    assert verdicts.not_found == 1
    assert not verdicts.problems


def test_a_failed_pair_leaves_the_key_unsettled_not_not_found(tmp_path: Path) -> None:
    ledger = KeyLedger("revoke")
    ledger.add(result("half-key-00000", "na", Outcome.ABSENT))
    ledger.add(result("half-key-00000", "eu", Outcome.FAILED))
    verdicts = ledger.settle(tmp_path / "none.jsonl", "run")
    assert (verdicts.not_found, verdicts.unsettled) == (0, 1)


def test_a_key_an_earlier_run_deleted_is_revoked_on_a_plain_rerun(tmp_path: Path) -> None:
    log = log_with(
        tmp_path / "audit.jsonl",
        {"event": "run_started", "run_id": "r1"},
        {"event": "revoke", "run_id": "r1", "app_id": APP, "region": "eu",
         "key_id": key_id("old-key-000000"), "outcome": "revoked"},
        {"event": "run_finished", "run_id": "r1"},
    )  # fmt: skip
    ledger = KeyLedger("revoke")
    for region in ("na", "eu"):
        ledger.add(result("old-key-000000", region, Outcome.ABSENT))
    verdicts = ledger.settle(log, "r2")
    assert (verdicts.revoked, verdicts.not_found) == (1, 0)


def test_a_deletion_of_the_same_key_id_in_another_app_is_no_evidence(tmp_path: Path) -> None:
    log = log_with(
        tmp_path / "audit.jsonl",
        {"event": "revoke", "run_id": "r1", "app_id": "other", "region": "na",
         "key_id": key_id("old-key-000000"), "outcome": "revoked"},
    )  # fmt: skip
    ledger = KeyLedger("revoke")
    ledger.add(result("old-key-000000", "na", Outcome.ABSENT))
    assert ledger.settle(log, "r2").not_found == 1


def test_a_rotate_line_whose_delete_answered_200_is_evidence_of_a_deletion(
    tmp_path: Path,
) -> None:
    log = log_with(
        tmp_path / "audit.jsonl",
        {"event": "rotate", "phase": "result", "run_id": "r1", "app_id": APP, "region": "na",
         "key_id": key_id("scripted-key-0"), "outcome": "absent",
         "delete": {"outcome": "revoked"}},
    )  # fmt: skip
    ledger = KeyLedger("revoke")
    ledger.add(result("scripted-key-0", "na", Outcome.ABSENT))
    assert ledger.settle(log, "r2").revoked == 1


def test_an_unfinished_run_in_the_log_is_named_among_the_causes(tmp_path: Path) -> None:
    log = log_with(tmp_path / "audit.jsonl", {"event": "run_started", "run_id": "killed"})
    ledger = KeyLedger("revoke")
    ledger.add(result("gone-key-00000", "na", Outcome.ABSENT))
    verdicts = ledger.settle(log, "now")
    assert verdicts.unfinished_runs == 1
    assert any("never finished" in cause for cause in verdicts.causes())


def test_an_app_none_of_whose_keys_was_found_is_named(tmp_path: Path) -> None:
    ledger = KeyLedger("revoke")
    for key in ("typo-a-0000000", "typo-b-0000000"):
        ledger.add(result(key, "na", Outcome.ABSENT, app="typoapp"))
    ledger.add(result("real-key-00000", "na", Outcome.ABSENT, app=APP))
    ledger.add(result("real-key-11111", "na", Outcome.REVOKED, app=APP))
    verdicts = ledger.settle(tmp_path / "none.jsonl", "run")
    assert verdicts.apps_not_found == [("typoapp", 2)]


def test_verify_only_points_out_the_app_and_changes_no_exit_code(tmp_path: Path) -> None:
    ledger = KeyLedger("verify")
    ledger.add(result("typo-a-0000000", "na", Outcome.ABSENT, app="typoapp"))
    verdicts = ledger.settle(tmp_path / "none.jsonl", "run")
    assert verdicts.apps_not_found == [("typoapp", 1)]
    assert not verdicts.problems


def test_live_streams_named_by_url_are_counted_once_per_key_and_region(tmp_path: Path) -> None:
    from collections import Counter

    ledger = KeyLedger("revoke")
    ledger.watch_streams(APP, "na", Counter({"leaked-key-000": 2, "innocent-key-0": 1}))
    ledger.add(result("leaked-key-000", "na", Outcome.REVOKED))
    ledger.add(result("leaked-key-000", "eu", Outcome.ABSENT))
    assert ledger.settle(tmp_path / "none.jsonl", "run").live_streams == 2


def test_the_audit_log_is_not_read_when_every_key_was_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def read(*_: object, **__: object) -> None:
        raise AssertionError("the audit log was read")

    monkeypatch.setattr(keyverdicts, "deleted_keys", read)
    log = log_with(tmp_path / "audit.jsonl", {"event": "run_started", "run_id": "killed"})
    ledger = KeyLedger("revoke")
    ledger.add(result("key-one-000000", "na", Outcome.REVOKED))
    ledger.add(result("key-two-000000", "na", Outcome.FAILED))
    verdicts = ledger.settle(log, "now")
    assert (verdicts.revoked, verdicts.unsettled, verdicts.unfinished_runs) == (1, 1, 0)


def test_samples_beyond_the_keys_held_are_read_back_from_the_runs_own_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keyverdicts, "DETAILS_HELD", 1)
    keys = ["first-key-0000", "redone-key-000", "typo-key-00000"]
    lines: list[dict[str, object]] = [
        {"event": "revoke", "run_id": "r1", "app_id": APP, "region": "na",
         "key_id": key_id("redone-key-000"), "outcome": "revoked"},
    ]  # fmt: skip
    ledger = KeyLedger("revoke")
    for key in keys:
        for region in ("na", "eu"):
            ledger.add(result(key, region, Outcome.ABSENT))
            lines.append(
                {"event": "revoke", "run_id": "r2", "app_id": APP, "region": region,
                 "key_id": key_id(key), "key_hint": key_hint(key), "outcome": "absent"}
            )  # fmt: skip
    verdicts = ledger.settle(log_with(tmp_path / "audit.jsonl", *lines), "r2")
    assert (verdicts.revoked, verdicts.not_found) == (1, 2)
    assert [(s.key_id, s.key_hint, s.regions) for s in verdicts.samples] == [
        (key_id("first-key-0000"), key_hint("first-key-0000"), ["na", "eu"]),
        (key_id("typo-key-00000"), key_hint("typo-key-00000"), ["na", "eu"]),
    ]


def test_a_key_absent_then_deleted_later_in_the_run_is_revoked_not_a_sample(
    tmp_path: Path,
) -> None:
    ledger = KeyLedger("revoke")
    ledger.add(result("late-key-00000", "na", Outcome.ABSENT))
    ledger.add(result("late-key-00000", "eu", Outcome.REVOKED))
    ledger.add(result("typo-key-00000", "na", Outcome.ABSENT))
    verdicts = ledger.settle(tmp_path / "none.jsonl", "run")
    assert (verdicts.revoked, verdicts.not_found) == (1, 1)
    assert [s.key_id for s in verdicts.samples] == [key_id("typo-key-00000")]
