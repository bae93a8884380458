"""``revoker prune``: delete the (key, region) pairs that are expired or too old.

For cron. Agora has no "list keys" call, so prune works on a key inventory
(the same inputs as ``revoke``). Per (app ID, region, key):

1. ``GET`` the key (the task's ``query`` audit line, which records ``matched``
   and why);
2. if it matches (``--expired``: ``expiresAfter > 0`` and ``createdAt +
   expiresAfter <= now``; ``--older-than D``: ``createdAt <= now - D``), ``DELETE``
   it: a ``revoke`` audit line follows the ``query`` line.

With ``dry_run`` the GETs are still sent (they are what tells which pairs
match) and nothing is deleted; the summary says how many pairs would be.
A pair whose ``createdAt`` or ``expiresAfter`` is missing or of another type
than the API's (``"60"`` for an integer) could not be checked: ``failed``, never
a match.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from revoker.engine.input.planner import Plan
from revoker.engine.interface import Pass
from revoker.engine.sched.calls import query_task, revoke_task
from revoker.engine.sched.pool import RunContext, TaskRunner
from revoker.models import FollowUp, Outcome, Task, TaskResult

PRUNE_RESUME_EVENTS = ("query", "revoke")


@dataclass(frozen=True)
class Rule:
    """Which pairs prune deletes: expired ones, or ones created before a cut-off."""

    expired: bool = False
    older_than: int | None = None  # seconds
    now: float | None = None  # fixed clock for tests; None: time.time() per check

    def __post_init__(self) -> None:
        if self.expired == (self.older_than is not None):
            raise ValueError("exactly one of expired / older_than")

    def describe(self) -> str:
        from revoker.durations import format_duration

        if self.expired:
            return "expired"
        assert self.older_than is not None
        return f"older than {format_duration(self.older_than)}"

    def check(self, data: Any) -> tuple[bool | None, str]:
        """(matches, why) for one key's GET data; matches is None if it could not be
        checked (a field missing or of another type than the API's)."""
        if not isinstance(data, dict):
            return False, "no key data in the answer"
        created = data.get("createdAt")
        if not isinstance(created, str) or not created.isascii() or not created.isdigit():
            shape = "other text" if isinstance(created, str) and created else _shape(created)
            return None, f"could not check: createdAt is {shape}, not Unix seconds as a string"
        now = time.time() if self.now is None else self.now
        if self.expired:
            expires_after = data.get("expiresAfter")
            if type(expires_after) is not int:  # a bool is an int to isinstance
                return (
                    None,
                    f"could not check: expiresAfter is {_shape(expires_after)}, not an integer",
                )
            if expires_after <= 0:
                return False, "never expires"
            if int(created) + expires_after <= now:
                return True, "expired"
            return False, "not expired yet"
        assert self.older_than is not None
        if int(created) <= now - self.older_than:
            return True, f"older than {self.describe().removeprefix('older than ')}"
        return False, "too recent"


def _shape(value: Any) -> str:
    """A field's type as a message names it, never its value (a server's text)."""
    if value is None:
        return "missing"
    if isinstance(value, str):
        return "a string" if value else "an empty string"
    return f"a {type(value).__name__}"


@dataclass
class Pruner:
    """The prune pass; counts the pairs that matched, per region."""

    rule: Rule
    dry_run: bool = False
    matched: Counter[str] = field(default_factory=Counter)

    async def run(self, ctx: RunContext, task: Task) -> TaskResult:
        result = await query_task(ctx, task)
        if result.outcome is not Outcome.PRESENT:
            return result
        matches, why = self.rule.check(result.data)
        result.audit_fields.update(matched=matches, match_reason=why, rule=self.rule.describe())
        if matches is None:
            # Not the API's shape: the pair is not done, and nothing is deleted on it.
            result.outcome = Outcome.FAILED
            result.message = why
            return result
        if not matches:
            return result
        self.matched[task.region] += 1
        if self.dry_run:
            result.audit_fields["dry_run"] = True
            return result
        deleted = await revoke_task(ctx, task)
        result.follow_ups.append(FollowUp("revoke", deleted, {"reason": why}))
        return result

    def passes(self, plan: Plan) -> list[Pass]:
        def runner(ctx: RunContext) -> TaskRunner:
            return lambda task: self.run(ctx, task)

        return [Pass("query", plan.tasks, runner)]

    def notes(self) -> list[str]:
        total = sum(self.matched.values())
        regions = ", ".join(f"{r} {n}" for r, n in sorted(self.matched.items()))
        detail = f" ({regions})" if regions else ""
        if self.dry_run:
            return [
                f"dry run: {total} pairs match ({self.rule.describe()}) and would be "
                f"deleted{detail}; nothing was deleted"
            ]
        return [f"pairs matching ({self.rule.describe()}): {total}{detail}"]
