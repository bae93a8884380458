"""``make bench``: revoker against the emulator over loopback; prints figures beside targets.

Sections (issue 5): 1 rate fidelity, 1b stray 429s (1,000 DELETEs with 0%, 1%, 5% of
them answered 429 at random), 2 throughput with the cap lifted (with three
baselines), 3 scale (dry run over 1,000,000 keys; memory per key of a real run),
4 start-up, 5 audit-log throughput, 6 revoke --disconnect (1,000 keys, 100 live
streams), 7 rotate (1,000 keys at the default caps), 8 the incident drill
(``revoke --verify`` of 1,000 keys at the default caps; time to revoke each key).
Every load loop is bounded; everything is on 127.0.0.1; generated files go to
``.bench/`` (not committed). Results are also written to ``.bench/results.json``.
Exit code 0 even when a target is missed (the table says so); 1 only if a run
itself broke.
"""

from __future__ import annotations

import base64
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    CUSTOMER_ID,
    CUSTOMER_SECRET,
    DATA,
    REGIONS,
    REVOKER,
    ChildResult,
    client_env,
    compile_revoker,
    iter_keys,
    journal_time,
    make_keys,
    median,
    read_journal,
    revoke_argv,
    run_child,
    write_seed_csv,
    write_text_keys,
)
from bench.multi_app import multi_app
from bench.report_memory import report_bench
from revoker.emulator.process import EmulatorProcess

PY = sys.executable
BENCH = Path(__file__).resolve().parent


@dataclass
class Row:
    section: str
    metric: str
    value: float
    unit: str
    target: str
    ok: bool | None  # None: informative, no target
    ratio: str = ""


ROWS: list[Row] = []
BROKEN: list[str] = []


def row(
    section: str,
    metric: str,
    value: float,
    unit: str,
    target: str = "",
    ok: bool | None = None,
    ratio: str = "",
) -> None:
    ROWS.append(Row(section, metric, value, unit, target, ok, ratio))
    mark = "" if ok is None else (" ok" if ok else " MISSED")
    print(f"  {metric}: {value:,.3f} {unit} {target}{mark}", flush=True)


def emulator(*args: str) -> EmulatorProcess:
    return EmulatorProcess(
        *args, customer_id=CUSTOMER_ID, customer_secret=CUSTOMER_SECRET, timeout=60
    )


def fresh(name: str) -> Path:
    path = DATA / name
    path.unlink(missing_ok=True)
    return path


def revoke(base_url: str, *args: str, audit: str) -> ChildResult:
    result = run_child(
        revoke_argv(*args, "--audit-log", str(fresh(audit))), env=client_env(base_url)
    )
    if result.code not in (0, 1):
        BROKEN.append(f"revoke {args[:4]}... exit {result.code}: {result.stderr[-400:]}")
    return result


def counts(result: ChildResult) -> Counter[str]:
    try:
        return Counter(result.json()["revoke"]["counts"])
    except (ValueError, KeyError):
        return Counter()


# 1. rate fidelity ------------------------------------------------------------

LIMITERS = ("token-bucket", "fixed-window", "sliding-window")
JITTER_MS = "50"


def served_rate(records: list[dict[str, Any]], method: str) -> tuple[float, int, int]:
    """(answers other than 429 per second, 429s, requests) of one method on stream keys
    in a journal; the stream listings a run sends before its first DELETE are not counted."""
    mine = [r for r in records if r["method"] == method and r["key"] is not None]
    ok = sorted(journal_time(r) for r in mine if r["status"] != 429)
    throttled = sum(1 for r in mine if r["status"] == 429)
    span = ok[-1] - ok[0] if len(ok) > 1 else float("inf")
    return (len(ok) - 1) / span, throttled, len(mine)


def fidelity_rows(label: str, records: list[dict[str, Any]], method: str, cap: float) -> None:
    rate, throttled, sent = served_rate(records, method)
    row(
        "1",
        f"{label}: {method} rate",
        rate,
        "req/s",
        f">= {0.95 * cap:g} (95% of {cap:g})",
        rate >= 0.95 * cap,
        f"{rate / cap:.1%} of cap",
    )
    row(
        "1",
        f"{label}: {method} answered 429",
        100 * throttled / max(sent, 1),
        "%",
        "<= 1%",
        throttled <= 0.01 * sent,
    )


def rate_fidelity() -> None:
    print(
        "1. rate fidelity (emulator caps 50 DELETE/s and 100 GET/s per app, 0-50 ms jitter "
        "unless said; 1,000 DELETEs (revoke), 2,000 GETs (verify), default options)"
    )
    keys = make_keys(250, "rate")
    one = write_text_keys(DATA / "rate-keys.txt", keys)
    many = write_text_keys(DATA / "rate-keys-get.txt", make_keys(500, "rate"))
    # Each limiter with 0-50 ms of jitter, then the strictest one on a calm path,
    # where the pacer's target rises with the narrower spread of round trips.
    runs = [(algorithm, JITTER_MS, algorithm) for algorithm in LIMITERS]
    runs.append(("sliding-window", "0", "sliding-window, no jitter"))
    for algorithm, jitter, label in runs:
        journal = fresh(f"rate-{algorithm}.jsonl")
        args = ("--rate-limit-algorithm", algorithm, "--jitter-ms", jitter)
        with emulator(*args, "--journal", str(journal)) as emu:
            deleted = revoke(emu.base_url, str(one), "--app-id", "rate-del", audit="rate-del.jsonl")
            get_audit = str(fresh("rate-get.jsonl"))
            verify = [REVOKER, "-q", "verify", "--output", "json", str(many)]
            checked = run_child(
                [*verify, "--app-id", "rate-get", "--audit-log", get_audit],
                env=client_env(emu.base_url),
            )
        if checked.code not in (0, 1):
            BROKEN.append(f"verify under {label}: exit {checked.code}: {checked.stderr[-400:]}")
        records = read_journal(journal)
        fidelity_rows(label, records, "DELETE", 50)
        fidelity_rows(label, records, "GET", 100)
        failed = counts(deleted)["failed"]
        row("1", f"{label}: failed DELETE tasks", failed, "tasks", "= 0", failed == 0)
    # A server cap half of what revoker assumes (another client on the app ID, or
    # a lower quota): the pace must find it and hold it without a storm of 429s.
    journal = fresh("rate-lower.jsonl")
    with emulator("--delete-rps", "25", "--journal", str(journal)) as emu:
        lower = revoke(emu.base_url, str(one), "--app-id", "rate-low", audit="rate-low.jsonl")
    rate, throttled, sent = served_rate(read_journal(journal), "DELETE")
    row(
        "1",
        "server cap 25/s, revoker assuming 50: DELETE rate",
        rate,
        "req/s",
        ">= 22.5 (90% of 25)",
        rate >= 22.5,
        f"{rate / 25:.1%} of the server's cap",
    )
    row(
        "1",
        "server cap 25/s, revoker assuming 50: answered 429",
        100 * throttled / max(sent, 1),
        "%",
        "<= 10%",
        throttled <= 0.1 * sent,
    )
    failed = counts(lower)["failed"]
    row("1", "server cap 25/s: failed DELETE tasks", failed, "tasks", "= 0", failed == 0)
    two = DATA / "rate-two.csv"
    two.write_text(
        "stream_key,app_id\n"
        + "".join(f"{k},{'rate-a' if i % 2 else 'rate-b'}\n" for i, k in enumerate(keys))
    )
    journal = fresh("rate-two-journal.jsonl")
    with emulator("--jitter-ms", JITTER_MS, "--journal", str(journal)) as emu:
        double = revoke(emu.base_url, str(two), audit="rate-two.jsonl")
    records = read_journal(journal)
    rate2, throttled2, sent2 = served_rate(records, "DELETE")
    row(
        "1",
        "sliding-window, two apps: combined DELETE rate",
        rate2,
        "req/s",
        ">= 95 (95% of 2x50)",
        rate2 >= 95,
        f"{rate2 / 100:.1%} of caps",
    )
    row(
        "1",
        "sliding-window, two apps: answered 429",
        100 * throttled2 / max(sent2, 1),
        "%",
        "<= 1%",
        throttled2 <= 0.01 * sent2,
    )
    row("1", "two apps: wall time (1,000 pairs)", double.wall, "s", "ideal 10.5", None)


# 1b. stray 429s ------------------------------------------------------------------

STRAY_SEEDS = (1, 2, 3, 4)


def stray_run(keys: Path, tag: str, *emu_args: str) -> tuple[float, int]:
    """(wall seconds, DELETEs answered 429) of 1,000 DELETEs in one region at 50/s."""
    journal = fresh(f"stray-{tag}.jsonl")
    with emulator("--fault-method", "DELETE", "--journal", str(journal), *emu_args) as emu:
        result = revoke(
            emu.base_url, str(keys), "--app-id", f"stray-{tag}", "--regions", "na",
            audit=f"stray-{tag}-audit.jsonl",
        )  # fmt: skip
    failed = counts(result)["failed"]
    if failed:
        BROKEN.append(f"stray 429s {tag}: {failed} failed DELETE tasks")
    records = [r for r in read_journal(journal) if r["method"] == "DELETE"]
    return result.wall, sum(1 for r in records if r["status"] == 429)


def stray_throttles() -> None:
    print(
        "1b. stray 429s (1,000 DELETEs in one region at the 50/s cap; the emulator answers "
        f"0%, 1%, 5% of them 429 at random, Retry-After: 1, seeds {STRAY_SEEDS})"
    )
    keys = write_text_keys(DATA / "stray-keys.txt", make_keys(1000, "stray"))
    # The run without them twice, interleaved with the others: the machine is shared.
    clean = [stray_run(keys, "clean-1")[0]]
    walls: dict[str, list[float]] = {"1%": [], "5%": []}
    throttled: dict[str, list[int]] = {"1%": [], "5%": []}
    for seed in STRAY_SEEDS:
        for share, rate in (("1%", "0.01"), ("5%", "0.05")):
            tag = f"{share[:-1]}pc-{seed}"  # an app ID has no dots
            wall, n = stray_run(keys, tag, "--throttle-rate", rate, "--seed", str(seed))
            walls[share].append(wall)
            throttled[share].append(n)
    clean.append(stray_run(keys, "clean-2")[0])
    base = median(clean)
    row("1b", "no stray 429s: wall time (median of 2)", base, "s", "ideal 20.9", None)
    for share, bound in (("1%", 1.08), ("5%", 1.25)):
        ratios = sorted(w / base for w in walls[share])
        mid = median(ratios)
        row(
            "1b",
            f"{share} stray 429s: wall time against none (median of {len(ratios)})",
            mid,
            "x",
            f"<= {bound}x",
            mid <= bound,
            "runs " + ", ".join(f"{r:.2f}x" for r in ratios),
        )
        row(
            "1b",
            f"{share} stray 429s: DELETEs answered 429 per run",
            median(throttled[share]),
            "requests",
            "",
            None,
            ", ".join(str(n) for n in throttled[share]),
        )


# 2. throughput -----------------------------------------------------------------


def curl_run(base_url: str, app: str, keys: list[str], parallel: int) -> float:
    """``xargs -P 32 curl``: one curl process per request, as a shell script would."""
    urls = DATA / "curl-urls.txt"
    urls.write_text(
        "".join(
            f"{base_url}/{region}/v1/projects/{app}/rtls/ingress/streamkeys/{key}\n"
            for key in keys
            for region in REGIONS
        )
    )
    auth = base64.b64encode(f"{CUSTOMER_ID}:{CUSTOMER_SECRET}".encode()).decode()
    script = (
        f"xargs -P {parallel} -n 1 curl -s -o /dev/null -X DELETE "
        f"-H 'Authorization: Basic {auth}' < {urls}"
    )
    result = run_child(["sh", "-c", script], timeout=120)
    if result.code != 0:
        BROKEN.append(f"curl baseline exit {result.code}: {result.stderr[-300:]}")
    return len(keys) * len(REGIONS) / result.wall


def baseline(
    script: str,
    base_url: str,
    app: str,
    keys_file: Path,
    concurrency: int,
    *extra: str,
    expect: str = "200",
) -> tuple[float, float, float]:
    """(requests/s from the first request, CPU ms per request, requests/s over the whole
    process) of one baseline loop."""
    argv = [PY, str(BENCH / script), base_url, app, str(keys_file), str(concurrency), *extra]
    result = run_child(argv)
    if result.code != 0:
        BROKEN.append(f"{script} exit {result.code}: {result.stderr[-300:]}")
        return float("nan"), float("nan"), float("nan")
    data = result.json()
    if data["statuses"] != {expect: data["requests"]}:
        BROKEN.append(f"{script}: statuses {data['statuses']}")
    return float(data["rps"]), 1000 * result.cpu / data["requests"], data["requests"] / result.wall


def request_span(audit: Path, event: str = "revoke") -> float:
    """Seconds from the start of a run's first request to the answer of its last, read
    from its audit lines: what the loop's own timer measures (no start-up, no summary)."""
    records = [r for r in read_journal(audit) if r["event"] == event]
    first = min(journal_time(r) - r["duration_ms"] / 1000 for r in records)
    return float(max(journal_time(r) for r in records) - first)


def throughput() -> None:
    print("2. throughput (--max-rps 0, concurrency 64, emulator latency 20 ms, no rate limits)")
    concurrency, latency = 64, 0.020
    keys = make_keys(1000, "thr")
    small = keys[:250]  # the slow baselines send 1,000 pairs, not 4,000 (bounded time)
    # thr-rev0 and thr-aio0 get one key each: the start-up's CPU, told apart from the requests'.
    rounds = ("1", "2", "3")
    apps = [f"thr-{side}{n}" for n in rounds for side in ("rev", "aio")]
    apps += ["thr-hxaio", "thr-httpx", "thr-curl"]
    apps += ["thr-rev0", "thr-aio0"]
    seed = write_seed_csv(DATA / "thr-seed.csv", ((k, a) for a in apps for k in keys))
    keys_file = write_text_keys(DATA / "thr-keys.txt", keys)
    small_file = write_text_keys(DATA / "thr-keys-small.txt", small)
    one_file = write_text_keys(DATA / "thr-keys-one.txt", keys[:1])
    args = ("--latency-ms", "20", "--delete-rps", "0", "--get-rps", "0")
    runs: list[ChildResult] = []
    aio: list[tuple[float, float, float]] = []
    with emulator("--seed-keys", str(seed), *args) as emu:
        # Interleaved rounds, the best of each side: CPU time on this VM moves by a
        # fifth from one run to the next, for revoker and the loop alike.
        for n in rounds:
            aio.append(baseline("baseline_aiohttp.py", emu.base_url, f"thr-aio{n}", keys_file, 64))
            result = revoke(
                emu.base_url,
                *(str(keys_file), "--app-id", f"thr-rev{n}", "--max-rps", "0"),
                *("--concurrency", str(concurrency)),
                audit=f"thr-rev{n}.jsonl",
            )
            runs.append(result)
            if counts(result)["revoked"] != 4000:
                BROKEN.append(f"throughput run {n}: {dict(counts(result))}")
        start = revoke(
            emu.base_url,
            *(str(one_file), "--app-id", "thr-rev0", "--max-rps", "0"),
            *("--concurrency", str(concurrency)),
            audit="thr-rev0.jsonl",
        )
        aio_start = baseline("baseline_aiohttp.py", emu.base_url, "thr-aio0", one_file, 64)
        hxaio = baseline(
            "baseline_httpx.py", emu.base_url, "thr-hxaio", keys_file, concurrency, "aiohttp"
        )
        hx = baseline("baseline_httpx.py", emu.base_url, "thr-httpx", small_file, concurrency)
        curl = curl_run(emu.base_url, "thr-curl", small, 32)
    best = min(runs, key=lambda r: r.wall)
    least_cpu = min(r.cpu for r in runs)
    cpu = 1000 * least_cpu / 4000  # ms per request, the least of the rounds
    rps = 4000 / best.wall
    aio_rps = max(r for r, _, _ in aio)
    aio_best_cpu = min(c for _, c, _ in aio)
    aio_whole = max(whole for _, _, whole in aio)
    best_n = rounds[runs.index(best)]
    steady = 4000 / request_span(DATA / f"thr-rev{best_n}.jsonl")
    ideal = concurrency / latency
    row(
        "2",
        f"revoker (best of {len(rounds)}, 4,000 pairs)",
        rps,
        "req/s",
        "",
        None,
        f"{rps / ideal:.0%} of ideal",
    )
    row("2", "revoker, first request to last (its audit lines)", steady, "req/s", "", None)
    row("2", "revoker: CPU per request (least of the rounds)", cpu, "ms", "", None)
    row("2", f"baseline asyncio+aiohttp loop (best of {len(rounds)})", aio_rps, "req/s", "", None)
    row(
        "2",
        "baseline asyncio+aiohttp loop: CPU per request (least of the rounds)",
        aio_best_cpu,
        "ms",
        "",
        None,
    )
    row("2", "baseline asyncio+httpx over httpx-aiohttp", hxaio[0], "req/s", "", None)
    row("2", "baseline httpx over httpx-aiohttp: CPU per request", hxaio[1], "ms", "", None)
    row("2", "baseline asyncio+httpx loop (1,000 pairs)", hx[0], "req/s", "", None)
    row("2", "baseline xargs -P 32 curl (1,000 pairs)", curl, "req/s", "", None)
    row("2", "ideal bound concurrency/latency", ideal, "req/s", "", None)
    # The loop's rate is timed by its own clock from its first request; revoker's here
    # by the process's wall time, start-up and summary included (the older floor).
    row(
        "2",
        "revoker / aiohttp loop (revoker's start-up counted, the loop's not)",
        100 * rps / aio_rps,
        "%",
        ">= 70%",
        rps >= 0.7 * aio_rps,
    )
    # Timed alike: both as whole processes, and both from the first request to the last.
    row(
        "2",
        "revoker / aiohttp loop, both as whole processes",
        100 * rps / aio_whole,
        "%",
        ">= 85%",
        rps >= 0.85 * aio_whole,
    )
    row(
        "2",
        "revoker / aiohttp loop, both from first request to last",
        100 * steady / aio_rps,
        "%",
        ">= 85%",
        steady >= 0.85 * aio_rps,
    )
    row(
        "2",
        "revoker / aiohttp loop: CPU per request",
        cpu / aio_best_cpu,
        "x",
        "<= 1.6x",
        cpu <= 1.6 * aio_best_cpu,
    )
    # Start-up (imports, TLS contexts, the listings) apart: what each request costs.
    net = 1000 * (least_cpu - start.cpu) / (4000 - len(REGIONS))
    aio_net = (4000 * aio_best_cpu - len(REGIONS) * aio_start[1]) / (4000 - len(REGIONS))
    row("2", "revoker: start-up CPU (1 key)", start.cpu, "s", "", None)
    row(
        "2",
        "baseline aiohttp loop: start-up CPU (1 key)",
        len(REGIONS) * aio_start[1] / 1000,
        "s",
        "",
        None,
    )
    row("2", "revoker: CPU per request, start-up apart", net, "ms", "", None)
    row("2", "baseline aiohttp loop: CPU per request, start-up apart", aio_net, "ms", "", None)
    row(
        "2", "revoker / aiohttp loop: CPU per request, start-up apart", net / aio_net, "x", "", None
    )
    row("2", "revoker / xargs curl", rps / curl, "x", ">= 5x", rps >= 5 * curl)
    row("2", "revoker / httpx loop", rps / hx[0], "x", "", None)
    row("2", "revoker / httpx-over-aiohttp loop", 100 * rps / hxaio[0], "%", "", None)
    with emulator("--delete-rps", "0", "--get-rps", "0") as emu:
        ceiling, _, _ = baseline(
            "baseline_aiohttp.py", emu.base_url, "thr-ceiling", keys_file, 64, expect="404"
        )
    row("2", "emulator ceiling (aiohttp loop, 0 ms latency, 404s)", ceiling, "req/s", "", None)


# 3. scale ----------------------------------------------------------------------


def scale() -> None:
    print("3. scale (dry run over 1,000,000 keys; memory per key of a real run)")
    million = DATA / "keys-1m.txt"
    if not million.exists() or million.stat().st_size < 30_000_000:
        write_text_keys(million, iter_keys(1_000_000, "m"))
    dry = run_child(
        [
            REVOKER,
            "-q",
            "revoke",
            str(million),
            "--app-id",
            "scale",
            "--dry-run",
            "--output",
            "json",
        ],
        env=client_env("http://127.0.0.1:9"),
    )
    tasks = dry.json()["plan"]["tasks"] if dry.code == 0 else 0
    if tasks != 4_000_000:
        BROKEN.append(f"dry run: exit {dry.code}, tasks {tasks}: {dry.stderr[-300:]}")
    row("3", "dry run 1M keys (4M pairs): wall", dry.wall, "s", "<= 30 s", dry.wall <= 30)
    row("3", "dry run 1M keys: peak RSS", dry.max_rss_mb, "MB", "<= 150 MB", dry.max_rss_mb <= 150)
    peaks = {}
    with emulator("--delete-rps", "0", "--get-rps", "0") as emu:
        for n in (10_000, 100_000):
            keys_file = write_text_keys(DATA / f"mem-{n}.txt", make_keys(n, f"mem{n}-"))
            result = revoke(
                emu.base_url,
                str(keys_file),
                "--app-id",
                "mem",
                "--regions",
                "na",
                "--max-rps",
                "0",
                "--concurrency",
                "64",
                audit=f"mem-{n}.jsonl",
            )
            if sum(counts(result).values()) != n:
                BROKEN.append(f"memory run {n}: {dict(counts(result))}")
            peaks[n] = result.max_rss_mb
            row(
                "3",
                f"real run {n:,} keys (region na): peak RSS",
                result.max_rss_mb,
                "MB",
                f"{n / result.wall:,.0f} req/s",
                None,
            )
    per_key = (peaks[100_000] - peaks[10_000]) * 1024 * 1024 / 90_000
    row("3", "real run: memory growth per key", per_key, "bytes", "< 200", per_key < 200)


# 4. start-up -------------------------------------------------------------------


# ``revoker`` with rich hidden: structlog imports rich when it is installed, and in
# this venv it is (bandit, a dev tool, needs it); ``pip install revoker`` has none.
NO_RICH = [
    PY,
    "-c",
    "import sys; sys.modules['rich'] = None; sys.argv[0] = 'revoker'; "
    "from revoker.cli import run; run()",
]


def first_delete(base_url: str, journal: Path, launcher: list[str], tag: str) -> float:
    """Median over 7 runs of (arrival of the first DELETE) - (start of the process)."""
    delays = []
    for i in range(7):
        key = f"startup-{tag}-{i:04d}-xxxxxxxx"
        argv = [*launcher, "-q", "revoke", "--key", key, "--app-id", "start"]
        result = run_child(
            [*argv, "--audit-log", str(fresh("start.jsonl"))], env=client_env(base_url)
        )
        mine = [journal_time(r) for r in read_journal(journal) if r["key"] == key]
        # Exit 1: the key was found in no region (it is not on the emulator), which is
        # the verdict a key never stored gets; the first DELETE is what is timed.
        if result.code not in (0, 1) or not mine:
            BROKEN.append(f"start-up run {tag} {i}: exit {result.code}, {len(mine)} requests")
            continue
        delays.append(min(mine) - result.started)
    return median(delays) if delays else float("nan")


def startup() -> None:
    print("4. start-up")
    walls = [run_child([REVOKER, "--help"]).wall for _ in range(10)]
    helped = median(walls)
    row("4", "revoker --help (median of 10)", helped, "s", "<= 0.25 s", helped <= 0.25)
    journal = fresh("start-journal.jsonl")
    with emulator("--journal", str(journal)) as emu:
        first = first_delete(emu.base_url, journal, [REVOKER], "venv")
        bare = first_delete(emu.base_url, journal, NO_RICH, "norich")
    row("4", "first DELETE after start (median of 7)", first, "s", "<= 0.5 s", first <= 0.5)
    row("4", "  same, rich not importable (as installed)", bare, "s", "<= 0.5 s", None)


# 5. audit ----------------------------------------------------------------------


def audit_throughput() -> None:
    print("5. audit writer")
    from revoker.audit.log import AuditLog
    from revoker.models import Attempt, Outcome, Task, TaskResult

    n = 50_000
    results = [
        TaskResult(
            Task("9d2498880e934632b38b0a68fa2f1622", REGIONS[i % 4], f"audit-key-{i:08d}-xyz"),
            Outcome.REVOKED,
            [
                Attempt(
                    "6f1c3c1e-5b7e-4b8e-9d1a-0c2b3d4e5f60",
                    "api.agora.io",
                    status=200,
                    ms=42,
                    server_request_id="6f1c3c1e-5b7e-4b8e-9d1a-0c2b3d4e5f60",
                )
            ],
        )
        for i in range(n)
    ]
    best = float("inf")
    for _ in range(3):  # best of 3: the machine is shared
        with tempfile.TemporaryDirectory(dir=DATA) as tmp:
            audit = AuditLog.open(Path(tmp) / "audit.jsonl", "run-id", fsync_interval=0.25)
            started = time.perf_counter()
            for result in results:
                audit.task("revoke", result)
            audit.close()
            best = min(best, time.perf_counter() - started)
            size = (Path(tmp) / "audit.jsonl").stat().st_size
    seconds = best
    rate = n / seconds
    row(
        "5",
        "audit records/s (fsync every 0.25 s, best of 3)",
        rate,
        "rec/s",
        ">= 20,000",
        rate >= 20_000,
    )
    row("5", "audit record size", size / n, "bytes", "", None)


# 6. incident drill ---------------------------------------------------------------

DRILL_KEYS = 1000
DELETE_CAP = 50.0


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (``share`` in 0..1) of a non-empty list."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def incident_drill() -> None:
    """1,000 leaked keys x 4 regions and 100 live streams: ``revoke --verify
    --disconnect`` at the default caps against the sliding-window limiter, first
    as the emulator runs by default (no jitter), then with 0-50 ms of jitter."""
    drill_run("", "0")
    drill_run(", 0-50 ms jitter", JITTER_MS)


def drill_run(label: str, jitter_ms: str) -> None:
    """One drill: wall time against the DELETE bound, every pair verified absent,
    every stream cut, and when each key was gone from all its regions."""
    print(
        f"8. incident drill{label} ({DRILL_KEYS:,} keys x 4 regions, 100 live streams, "
        "revoke --verify --disconnect, default caps, sliding-window limiter)"
    )
    name = f"drill{label and '-jitter'}"
    keys = make_keys(DRILL_KEYS, "drill")
    app = "drill-app"
    seed, live = seed_with_streams(keys, app, name)
    # The streamed keys (every tenth) last in the input: the worst place for them.
    streamed = set(keys[::10])
    ordered = [k for k in keys if k not in streamed] + [k for k in keys if k in streamed]
    keys_file = write_text_keys(DATA / f"{name}-keys.txt", ordered)
    emu_args = ["--seed-keys", str(seed), "--live-streams", str(live)]
    emu_args += ["--rate-limit-algorithm", "sliding-window", "--jitter-ms", jitter_ms]
    args = [str(keys_file), "--app-id", app, "--verify", "--disconnect"]
    with emulator(*emu_args) as emu:
        result = revoke(emu.base_url, *args, audit=f"{name}.jsonl")
        state = emu.state()
    left, streams_left = len(state["keys"]), len(state["streams"])
    pairs = DRILL_KEYS * len(REGIONS)
    try:
        summary = result.json()
    except ValueError:
        summary = {}
    cut = summary.get("disconnect", {}).get("counts", {}).get("disconnected", 0)
    # The force-disconnects count against the DELETE budget too (Agora's docs are
    # silent; revoker assumes so).
    deletes = pairs + cut
    bound = pairs / DELETE_CAP
    target = f"<= {1.1 * bound:g} s (1.10 x {bound:g} s DELETE bound)"
    row(
        "8",
        f"drill{label}: wall time",
        result.wall,
        "s",
        target,
        result.wall <= 1.1 * bound,
        f"{result.wall / bound:.2f}x the bound",
    )
    verified = summary.get("verify", {}).get("counts", {})
    absent = verified.get("absent", 0)
    row(
        "8",
        f"drill{label}: pairs verified absent",
        absent,
        "pairs",
        f"= {pairs:,}",
        absent == pairs,
    )
    row("8", f"drill{label}: keys left on the emulator", left, "pairs", "= 0", left == 0)
    row("8", f"drill{label}: streams cut and confirmed", cut, "of 100", "= 100", cut == 100)
    row(
        "8",
        f"drill{label}: streams left on the emulator",
        streams_left,
        "",
        "= 0",
        streams_left == 0,
    )
    row(
        "8",
        f"drill{label}: wall time against the {deletes:,} DELETEs it sends",
        result.wall / (deletes / DELETE_CAP),
        "x",
        "",
        None,
        f"{deletes / DELETE_CAP:g} s at {DELETE_CAP:g}/s",
    )
    for event in ("revoke", "verify"):
        throttled = summary.get(event, {}).get("extra", {}).get("throttled_429", 0)
        row("8", f"drill{label}: {event} requests answered 429", throttled, "requests", "")
    records = read_journal(DATA / f"{name}.jsonl")  # the audit log is JSONL too
    gone: dict[str, list[float]] = {}
    for record in records:
        if record.get("event") == "revoke" and record["outcome"] in ("revoked", "absent"):
            gone.setdefault(record["key_id"], []).append(journal_time(record))
    times = [max(ts) - result.started for ts in gone.values() if len(ts) == len(REGIONS)]
    if len(times) != DRILL_KEYS:
        BROKEN.append(f"drill{label}: {len(times)} keys gone from every region, not {DRILL_KEYS}")
    if times:
        for pct, share in (("p50", 0.5), ("p99", 0.99)):
            row(
                "8", f"drill{label}: time to revoke a key, {pct}", percentile(times, share), "s", ""
            )
    cuts = [
        journal_time(record) - result.started
        for record in records
        if record.get("event") == "disconnect" and record.get("outcome") == "disconnected"
    ]
    if cuts:
        for pct, share in (("p50", 0.5), ("p90", 0.9), ("max", 1.0)):
            value = percentile(cuts, share)
            target, ok = ("<= 10 s", value <= 10) if pct == "max" else ("", None)
            row(
                "8",
                f"drill{label}: time to cut a stream (streamed keys last in the input), {pct}",
                value,
                "s",
                target,
                ok,
            )


# table -------------------------------------------------------------------------


# 6. rotate ----------------------------------------------------------------------

ROTATE_KEYS = 1000


def rotate_bench() -> None:
    print(f"7. rotate ({ROTATE_KEYS:,} keys in one region, default caps: GET 100/s, "
          "DELETE 50/s, create 50/s, independent budgets)")  # fmt: skip
    keys = make_keys(ROTATE_KEYS, "rot")
    seed = DATA / "rotate-seed.csv"
    seed.write_text(
        "stream_key,app_id,regions,channel,uid\n"
        + "".join(f"{k},rotate-app,na,ch{i},{i}\n" for i, k in enumerate(keys))
    )
    wanted = DATA / "rotate-keys.csv"
    wanted.write_text("stream_key,app_id\n" + "".join(f"{k},rotate-app\n" for k in keys))
    journal = fresh("rotate-journal.jsonl")
    out = fresh("rotate-new-keys.csv")
    with emulator("--seed-keys", str(seed), "--journal", str(journal)) as emu:
        argv = [
            REVOKER, "-q", "rotate", "--output", "json", str(wanted), "--regions", "na",
            "--audit-log", str(fresh("rotate-audit.jsonl")), "--new-keys-file", str(out),
        ]  # fmt: skip
        result = run_child(argv, env=client_env(emu.base_url))
    if result.code not in (0, 1):
        BROKEN.append(f"rotate exit {result.code}: {result.stderr[-400:]}")
        return
    try:
        done = Counter(result.json()["rotate"]["counts"])
    except (ValueError, KeyError):
        done = Counter()
    posts = sorted(journal_time(r) for r in read_journal(journal) if r["method"] == "POST"
                   and r["status"] == 200)  # fmt: skip
    rate = (len(posts) - 1) / (posts[-1] - posts[0]) if len(posts) > 1 else 0.0
    # Each of the 1,000 DELETEs and creates needs a 20 ms slot of its own budget;
    # the budgets run side by side, so the bound is one budget's time, not both.
    bound = ROTATE_KEYS / 50
    row("7", "rotate: rotated", done["rotated"], "keys", f"= {ROTATE_KEYS}",
        done["rotated"] == ROTATE_KEYS)  # fmt: skip
    row("7", "rotate: achieved create rate", rate, "req/s", ">= 47.5 (95% of 50)",
        rate >= 47.5, f"{rate / 50:.1%} of cap")  # fmt: skip
    row("7", "rotate: wall time (1,000 keys)", result.wall, "s",
        f"<= {bound * 1.1:.1f} (bound {bound:.0f} s + 10%)", result.wall <= bound * 1.1,
        f"{result.wall / bound:.2f}x bound")  # fmt: skip


def table() -> str:
    lines = [
        "| # | figure | value | target | result |",
        "|---|---|---:|---|---|",
    ]
    for r in ROWS:
        value = f"{r.value:,.0f}" if abs(r.value) >= 1000 else f"{r.value:,.3g}"
        result = "" if r.ok is None else ("met" if r.ok else "**MISSED**")
        if r.ratio:
            result = f"{result} ({r.ratio})" if result else r.ratio
        lines.append(f"| {r.section} | {r.metric} | {value} {r.unit} | {r.target} | {result} |")
    return "\n".join(lines)


# 6. disconnect ------------------------------------------------------------------


def seed_with_streams(keys: list[str], app: str, name: str) -> tuple[Path, Path]:
    """Seed files for the emulator: every key with a channel and uid, and 100 live
    streams (every tenth key) across every push form and region."""
    from revoker.emulator.streams import PROTOCOLS

    seed = DATA / "tmp" / f"{name}-seed.csv"
    seed.parent.mkdir(parents=True, exist_ok=True)
    seed.write_text(
        "stream_key,app_id,channel,uid\n"
        + "".join(f"{k},{app},ch{i},{i}\n" for i, k in enumerate(keys)),
        encoding="utf-8",
    )
    live = DATA / "tmp" / f"{name}-streams.csv"
    live.write_text(
        "stream_key,app_id,region,channel,uid,protocol\n"
        + "".join(
            f"{keys[i * 10]},{app},{REGIONS[i % 4]},ch{i * 10},{i * 10},{PROTOCOLS[i % 5]}\n"
            for i in range(100)
        ),
        encoding="utf-8",
    )
    return seed, live


def disconnect() -> None:
    """1,000 keys in 4 regions, 100 live streams across every push form, Agora's limits."""
    print("6. revoke --disconnect")
    keys = make_keys(1000, "d")
    app = "benchapp"
    seed, live = seed_with_streams(keys, app, "disconnect")
    key_file = write_text_keys(DATA / "tmp" / "disconnect-keys.txt", keys)
    journal = fresh("disconnect-journal.jsonl")
    with emulator(
        "--seed-keys", str(seed), "--live-streams", str(live), "--journal", str(journal)
    ) as emu:
        result = revoke(
            emu.base_url, str(key_file), "--app-id", app, "--disconnect", audit="disconnect.jsonl"
        )
        stats = emu.stats()
        left = len(emu.state()["streams"])
    try:
        cut = result.json()["disconnect"]["counts"].get("disconnected", 0)
    except (ValueError, KeyError):
        cut = 0
    records = read_journal(journal)
    listings = sum(1 for r in records if r["method"] == "GET" and r["path"].endswith("-streams"))
    polls = sum(1 for r in records if r["method"] == "GET" and r["sid"])
    row("6", "streams cut off and confirmed (of 100)", cut, "", "= 100", cut == 100 and not left)
    row("6", "requests sent", stats["total"], "", "")
    row("6", "  stream listings (once per region, before and after)", listings, "", "= 8")
    row("6", "  confirming GETs of one stream", polls, "", "")
    row("6", "wall time, 4,000 pairs at Agora's limits", result.wall, "s", "")


SECTIONS: dict[str, Callable[[], None]] = {
    "rate": rate_fidelity,
    "stray": stray_throttles,
    "throughput": throughput,
    "scale": scale,
    "startup": startup,
    "audit": audit_throughput,
    "disconnect": disconnect,
    "rotate": rotate_bench,
    "drill": incident_drill,
    "multi-app": lambda: multi_app(emulator, revoke, row, BROKEN),
    "report": lambda: report_bench(row, BROKEN),
}


def main(argv: list[str]) -> int:
    wanted = argv or list(SECTIONS)
    DATA.mkdir(exist_ok=True)
    compile_revoker()
    started = time.perf_counter()
    machine = f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}"
    print(f"revoker benchmarks on {machine}, Python {platform.python_version()}", flush=True)
    for name in wanted:
        SECTIONS[name]()
    total = time.perf_counter() - started
    print()
    print(table())
    missed = [r for r in ROWS if r.ok is False]
    print(
        f"\n{len(ROWS) - len(missed)} figures, {len(missed)} target(s) missed; "
        f"bench took {total:.0f} s on {machine} (load average "
        f"{os.getloadavg()[0]:.1f} at the end)"
    )
    (DATA / "results.json").write_text(
        json.dumps(
            {
                "machine": machine,
                "seconds": total,
                "rows": [r.__dict__ for r in ROWS],
                "broken": BROKEN,
            },
            indent=2,
        )
    )
    for problem in BROKEN:
        print(f"BROKEN: {problem}", file=sys.stderr)
    shutil.rmtree(DATA / "tmp", ignore_errors=True)
    return 1 if BROKEN else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
