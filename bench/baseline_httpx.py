"""Baseline: a minimal asyncio + httpx loop (httpx's default transport and pool).

Same requests as baseline_aiohttp.py; no retries, no audit log, no rate limit.
With ``aiohttp`` as a fifth argument, httpx runs over httpx-aiohttp's transport
(the stack revoker uses), to separate revoker's own cost from the stack's.
Usage: baseline_httpx.py BASE_URL APP_ID KEYS_FILE CONCURRENCY [aiohttp]
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
from baseline_aiohttp import urls


async def main(
    base: str, app: str, keys_file: Path, concurrency: int, over_aiohttp: bool = False
) -> dict[str, object]:
    todo = urls(base, app, keys_file)
    statuses: Counter[int] = Counter()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    transport = None
    if over_aiohttp:
        from httpx_aiohttp import AiohttpTransport

        transport = AiohttpTransport(limits=limits, trust_env=False)
    async with httpx.AsyncClient(
        auth=("bench-id", "bench-secret"), limits=limits, trust_env=False, transport=transport
    ) as client:
        it: Iterator[str] = iter(todo)

        async def worker() -> None:
            for url in it:
                response = await client.delete(url, headers={"X-Request-ID": str(uuid.uuid4())})
                statuses[response.status_code] += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return {
        "requests": len(todo),
        "seconds": seconds,
        "rps": len(todo) / seconds,
        "statuses": {str(k): v for k, v in statuses.items()},
    }


if __name__ == "__main__":
    base, app, keys, conc = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
    over_aiohttp = sys.argv[5:6] == ["aiohttp"]
    print(json.dumps(asyncio.run(main(base, app, keys, conc, over_aiohttp))))
