"""Profile revoker in the throughput configuration and print where the CPU goes, by layer.

Runs ``revoker revoke`` (4,000 pairs, --max-rps 0, --concurrency 64) under pyinstrument
against the emulator (20 ms latency, rate limits off) and sums self time per package:
revoker, tenacity, httpx, httpx-aiohttp, aiohttp/yarl/multidict, asyncio, the rest.
Usage: python bench/profile_throughput.py   (writes .bench/throughput.pyisession)
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    CUSTOMER_ID,
    CUSTOMER_SECRET,
    DATA,
    REVOKER,
    client_env,
    compile_revoker,
    make_keys,
    revoke_argv,
    run_child,
    write_seed_csv,
    write_text_keys,
)
from revoker.emulator.process import EmulatorProcess

# revoker's own aiohttp transport, counted apart from revoker.
ADAPTER = "revoker's aiohttp transport (adapter)"
ADAPTER_MODULE = "revoker/agora/transport.py"

LAYERS = (
    ("revoker/", "revoker (engine, client, audit, planner)"),
    ("tenacity/", "tenacity (retry loop)"),
    ("httpx_aiohttp/", "httpx-aiohttp adapter"),
    ("httpx/", "httpx client layer (URL, headers, Request/Response)"),
    ("aiohttp/", "aiohttp (HTTP/1.1 client, pool)"),
    ("yarl/", "aiohttp (HTTP/1.1 client, pool)"),
    ("multidict/", "aiohttp (HTTP/1.1 client, pool)"),
    ("asyncio/", "asyncio event loop"),
    ("json/", "json"),
    ("/uuid.py", "uuid4"),
    ("/selectors.py", "asyncio event loop"),
)


def layer_of(path: str, caller: str) -> str:
    """The layer of a frame's file; built-ins and other stdlib count for their caller."""
    if path.endswith(ADAPTER_MODULE):
        return ADAPTER
    for needle, name in LAYERS:
        if needle in path:
            return name
    if "site-packages" in path:
        return "other third-party (click, structlog, ...)"
    return caller


def main() -> None:
    from pyinstrument.session import Session

    compile_revoker()
    keys = make_keys(1000, "prof")
    seed = write_seed_csv(DATA / "prof-seed.csv", ((k, "prof") for k in keys))
    keys_file = write_text_keys(DATA / "prof-keys.txt", keys)
    out = DATA / "throughput.pyisession"
    args = ("--latency-ms", "20", "--delete-rps", "0", "--get-rps", "0", "--seed-keys", str(seed))
    with EmulatorProcess(*args, customer_id=CUSTOMER_ID, customer_secret=CUSTOMER_SECRET) as emu:
        audit = DATA / "prof-audit.jsonl"
        audit.unlink(missing_ok=True)
        argv = revoke_argv(str(keys_file), "--app-id", "prof", "--max-rps", "0")
        argv += ["--concurrency", "64", "--audit-log", str(audit)]
        pyinstrument = str(Path(sys.executable).parent / "pyinstrument")
        result = run_child(
            [pyinstrument, "-r", "session", "-o", str(out), REVOKER, *argv[1:]],
            env=client_env(emu.base_url),
        )
    if result.code != 0:
        sys.exit(f"profiled run failed: {result.stderr[-500:]}")
    session = Session.load(str(out))
    totals: Counter[str] = Counter()

    def walk(frame: Any, caller: str) -> None:
        # Own time: the frame's, plus its synthetic "[self]" children; never "[await]"
        # (time suspended in an await is waiting, not CPU).
        layer = layer_of(frame.file_path or "", caller)
        own = frame.time - sum(c.time for c in frame.children if c.identifier != "[self]")
        totals[layer] += own
        for child in frame.children:
            if not child.is_synthetic:
                walk(child, layer)

    root = session.root_frame()
    walk(root, "start-up (imports, CLI)")
    total = sum(totals.values())
    print(f"profiled revoker run: {total:.2f} s of samples, 4,000 DELETEs")
    for name, seconds in totals.most_common():
        print(f"  {100 * seconds / total:5.1f}%  {1000 * seconds / 4000:6.3f} ms/req  {name}")


if __name__ == "__main__":
    main()
