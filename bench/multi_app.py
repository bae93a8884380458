"""``make bench`` section 9: several app IDs in one run, input grouped by app or interleaved.

Each app ID has its own DELETE cap on the emulator (50/s by default, as Agora's),
so 10 apps x 100 keys x 4 regions is bounded by one app's 400 DELETEs: 8 s at
the cap, whatever the input order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from bench.common import DATA, REGIONS, ChildResult, make_keys, read_journal, write_seed_csv
from revoker.emulator.process import EmulatorProcess

APPS = 10
KEYS_PER_APP = 100
DELETE_CAP = 50.0


def multi_app(
    emulator: Callable[..., EmulatorProcess],
    revoke: Callable[..., ChildResult],
    row: Callable[..., None],
    broken: list[str],
) -> None:
    print(
        f"9. several app IDs ({APPS} apps x {KEYS_PER_APP} keys x 4 regions, default caps), "
        "input grouped by app and interleaved"
    )
    bound = KEYS_PER_APP * len(REGIONS) / DELETE_CAP
    orders: dict[str, list[tuple[str, str]]] = {}
    seed_rows: list[tuple[str, str]] = []
    for order in ("grouped", "interleaved"):
        by_app = {f"{order}-app{a}": make_keys(KEYS_PER_APP, f"{order}{a}-") for a in range(APPS)}
        grouped = [(key, app) for app, keys in by_app.items() for key in keys]
        interleaved = [(by_app[app][k], app) for k in range(KEYS_PER_APP) for app in by_app]
        orders[order] = grouped if order == "grouped" else interleaved
        seed_rows += grouped
    seed = write_seed_csv(DATA / "multi-app-seed.csv", iter(seed_rows))
    journal = DATA / "multi-app-journal.jsonl"
    journal.unlink(missing_ok=True)
    with emulator("--seed-keys", str(seed), "--journal", str(journal)) as emu:
        for order, rows in orders.items():
            keys_file = write_seed_csv(DATA / f"multi-app-{order}.csv", iter(rows))
            result = revoke(emu.base_url, str(keys_file), audit=f"multi-app-{order}.jsonl")
            wall = result.wall
            deletes = [
                e for e in read_journal(journal)
                if e.get("method") == "DELETE" and str(e.get("app_id", "")).startswith(order)
                and e.get("status") == 200
            ]  # fmt: skip
            if len(deletes) != APPS * KEYS_PER_APP * len(REGIONS):
                broken.append(f"multi-app {order}: {len(deletes)} DELETEs answered 200")
            per_app: dict[str, int] = defaultdict(int)
            for entry in deletes:
                per_app[entry["app_id"]] += 1
            row(
                "9",
                f"{order} input: wall time",
                wall,
                "s",
                f"<= {1.25 * bound:g} s (1.25 x {bound:g} s bound)",
                wall <= 1.25 * bound,
                f"{wall / bound:.2f}x the bound",
            )
            row("9", f"{order} input: aggregate DELETE rate", len(deletes) / wall, "/s", "")
            row(
                "9",
                f"{order} input: slowest app's rate",
                min(per_app.values()) / wall if per_app else 0.0,
                "/s",
                f"cap {DELETE_CAP:g}/s",
            )
