"""How long the real run takes at the cap (what a dry run prints)."""

from __future__ import annotations

from collections import Counter

import pytest

from revoker.engine.sched.estimate import duration, paced_estimate
from revoker.results import PlanStats
from revoker.settings import InputSettings, RunSettings, Shard


def stats(**per_app: int) -> PlanStats:
    counts = Counter({(app, "na"): n for app, n in per_app.items()})
    return PlanStats(tasks=sum(per_app.values()), per_app_region=counts)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.4, "0.4 s"), (42, "42 s"), (200, "3 min 20 s"), (80_000, "22 h 13 min")],
)
def test_durations_read_as_a_person_says_them(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_the_app_id_with_the_most_pairs_sets_the_time() -> None:
    text = paced_estimate("revoke", RunSettings(), stats(big=4000, small=100))
    assert text == (
        "at the cap (50 DELETE/s per app ID) the real run takes about 1 min 20 s: "
        "4000 DELETEs for app ID big (2 app IDs, each on its own budget, side by side)"
    )


def test_verify_is_paced_on_the_get_budget() -> None:
    text = paced_estimate("verify", RunSettings(), stats(app=1000))
    assert text is not None
    assert text.startswith("at the cap (100 GET/s per app ID) the real run takes about 10 s")


def test_a_shard_shares_the_cap() -> None:
    settings = RunSettings(inputs=InputSettings(shard=Shard.parse("0/4")))
    text = paced_estimate("revoke", settings, stats(app=1000))
    assert text is not None
    assert "(12.5 DELETE/s per app ID)" in text
    assert "about 1 min 20 s" in text


def test_no_cap_says_the_server_sets_the_pace() -> None:
    text = paced_estimate("revoke", RunSettings(max_rps=0), stats(app=10))
    assert text is not None
    assert text.startswith("no cap (--max-rps 0)")
