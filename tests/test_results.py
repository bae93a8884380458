"""The one exit-code rule and the per-event outcome rules every renderer shares."""

from __future__ import annotations

from collections import Counter

import pytest

from revoker.errors import EXIT_ABORTED, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from revoker.models import Outcome, Task, TaskResult, event_outcomes, is_problem, ok_outcomes
from revoker.results import HaltReason, Totals, exit_code_for


def test_halt_reasons_are_the_strings_the_audit_log_records() -> None:
    assert [str(r) for r in HaltReason] == [
        "interrupted",
        "auth_rejected",
        "audit_write_failed",
        "new_keys_file_failed",
    ]


@pytest.mark.parametrize(
    ("halt", "problems", "code"),
    [
        (HaltReason.AUTH_REJECTED, False, EXIT_ABORTED),
        (HaltReason.INTERRUPTED, True, EXIT_INTERRUPTED),
        (HaltReason.AUDIT_WRITE_FAILED, False, EXIT_FAILED),
        (HaltReason.NEW_KEYS_FILE_FAILED, False, EXIT_OK),
        (None, True, EXIT_FAILED),
        (None, False, EXIT_OK),
    ],
)
def test_the_halt_decides_the_exit_code_before_the_outcomes(
    halt: HaltReason | None, problems: bool, code: int
) -> None:
    assert exit_code_for(halt, problems=problems) == code


def test_present_is_a_success_for_a_query_and_a_problem_for_a_verify() -> None:
    assert not is_problem("query", "present")
    assert is_problem("verify", "present")
    assert not is_problem("verify", "absent")


@pytest.mark.parametrize("event", ["revoke", "verify", "query", "disconnect", "rotate"])
def test_failed_unknown_and_not_attempted_are_problems_for_every_event(event: str) -> None:
    for outcome in (Outcome.FAILED, Outcome.UNKNOWN, Outcome.NOT_ATTEMPTED):
        assert is_problem(event, outcome)
    assert set(ok_outcomes(event)) <= set(event_outcomes(event))


def test_an_event_without_rules_of_its_own_follows_revoke() -> None:
    assert ok_outcomes("prune") == ok_outcomes("revoke")


def test_a_pass_has_problems_only_when_a_problem_outcome_was_counted() -> None:
    verify = Totals("verify", counts=Counter({"absent": 3, "present": 0}))
    assert not verify.problems
    verify.counts["present"] += 1
    assert verify.problems


def test_a_json_pass_counts_every_outcome_and_region_of_the_run_even_at_zero() -> None:
    revoke = Totals("revoke")
    revoke.add(TaskResult(Task("app1", "na", "leaked-key-0001"), Outcome.ABSENT))
    shown = revoke.summary_dict(("na", "eu"))
    zero = {"absent": 0, "failed": 0, "not_attempted": 0, "revoked": 0}
    assert shown["tasks"] == 1
    assert shown["counts"] == {**zero, "absent": 1}
    assert shown["per_region"] == {"na": {**zero, "absent": 1}, "eu": zero}
    assert shown["extra"] == {"throttled_429": 0}
    assert shown["failures"] == []
