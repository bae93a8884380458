"""How long a run takes at the cap: what a dry run tells before the real one."""

from __future__ import annotations

from collections import Counter

from revoker.engine.sched.pacing import PASS_BUDGETS
from revoker.results import PlanStats
from revoker.settings import RunSettings


def duration(seconds: float) -> str:
    """``3 min 20 s``, ``22 h 13 min``, ``0.4 s``: as precise as a person needs."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def paced_estimate(command: str, settings: RunSettings, stats: PlanStats) -> str | None:
    """One sentence: how long the real run's requests take at the cap (each app ID has
    its own budget, so the app ID with the most pairs sets the time); ``command`` is
    also the name of its first pass (prune, which sends in a dry run, gets none)."""
    method = PASS_BUDGETS.get(command)
    if method is None or not stats.tasks:
        return None
    per_app: Counter[str] = Counter()
    for (app, _), count in stats.per_app_region.items():
        per_app[app] += count
    rps = settings.rps_for(method)
    if rps <= 0:
        return (
            f"no cap (--max-rps 0): {stats.tasks} {method}s as fast as the server answers "
            f"(--concurrency {settings.client.concurrency})"
        )
    app, busiest = per_app.most_common(1)[0]
    seconds = busiest / rps
    sentence = (
        f"at the cap ({rps:g} {method}/s per app ID) the real run takes about "
        f"{duration(seconds)}: {busiest} {method}s for app ID {app}"
    )
    if len(per_app) > 1:
        sentence += f" ({len(per_app)} app IDs, each on its own budget, side by side)"
    if command == "revoke" and settings.verify:
        sentence += f", then {settings.verify_delay:g} s for the last verify GETs"
    if settings.disconnect:
        sentence += ", plus the live-stream cuts"
    return sentence
