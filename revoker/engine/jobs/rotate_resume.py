"""What an earlier ``rotate`` run left for ``--resume``, and what a replacement is made with.

The latest ``rotate`` line of each pair decides: ``unknown`` (a create may have
happened) stays ``unknown`` without a request; a pair whose old key may already
be deleted is re-created from the settings that line recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from revoker.audit.log import iter_records
from revoker.models import Outcome

ROTATE = "rotate"

Pair = tuple[str, str, str]  # (app_id, region, key_id)


@dataclass(frozen=True)
class KeySettings:
    """What a replacement is created with."""

    channel: str
    uid: str
    expires_after: int

    @classmethod
    def from_data(cls, data: Any) -> KeySettings | None:
        """From a query's ``data`` (API names); None if it lacks a usable field."""
        if not isinstance(data, dict):
            return None
        channel, uid, expires = data.get("channel"), data.get("uid"), data.get("expiresAfter")
        if not isinstance(channel, str) or not isinstance(uid, str):
            return None
        if not isinstance(expires, int) or isinstance(expires, bool) or expires < 0:
            return None
        return cls(channel, uid, expires)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> KeySettings | None:
        """From a ``rotate`` audit line's own fields."""
        return cls.from_data(
            {
                "channel": record.get("channel"),
                "uid": record.get("uid"),
                "expiresAfter": record.get("expires_after"),
            }
        )

    def fields(self) -> dict[str, Any]:
        return {"channel": self.channel, "uid": self.uid, "expires_after": self.expires_after}


@dataclass(frozen=True)
class Prior:
    """What an earlier run left unfinished for a pair."""

    state: str  # "unknown": a create may have happened; "deleted": the old key may be gone
    settings: KeySettings | None
    run_id: str


def load_priors(path: Path) -> dict[Pair, Prior]:
    """Pairs whose latest ``rotate`` line leaves work that must not simply start over."""
    priors: dict[Pair, Prior] = {}
    if not path.exists():
        return priors
    for record in iter_records(path):
        if record.get("event") != ROTATE:
            continue
        pair = (str(record.get("app_id")), str(record.get("region")), str(record.get("key_id")))
        prior = _prior_of(record)
        earlier = priors.get(pair)
        if prior is None and earlier is not None and not _settles(record):
            continue  # e.g. a query that failed, a halt: what the earlier line left stands
        if prior is None:
            priors.pop(pair, None)
        else:
            priors[pair] = prior
    return priors


def _settles(record: dict[str, Any]) -> bool:
    """Whether a line without a prior of its own ends what an earlier line left.

    Only ``rotated`` and ``absent`` do. A ``failed`` or ``not_attempted`` line
    does not: a DELETE that failed (every attempt timed out or answered 5xx) may
    still have deleted the key, and a later run whose query failed or that halted
    (Ctrl-C, 401) learnt nothing, so the replacement is still owed and a create
    that may have happened is still ``unknown``.
    """
    return record.get("outcome") in (str(Outcome.ROTATED), str(Outcome.ABSENT))


def _prior_of(record: dict[str, Any]) -> Prior | None:
    run_id = str(record.get("run_id"))
    settings = KeySettings.from_record(record)
    if record.get("outcome") == str(Outcome.UNKNOWN):
        return Prior("unknown", settings, run_id)
    if record.get("phase") == "delete" or (
        record.get("outcome") == str(Outcome.FAILED) and record.get("old_key_deleted")
    ):
        return Prior("deleted", settings, run_id)
    return None
