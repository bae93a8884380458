"""Baseline: a minimal asyncio + aiohttp loop sending the same DELETEs as revoker.

No retries, no audit log, no rate limit: N workers over one shared iterator of
URLs, one ``aiohttp.ClientSession``. Prints one JSON line:
``{"requests": n, "seconds": s, "rps": r, "statuses": {...}}``.

Usage: baseline_aiohttp.py BASE_URL APP_ID KEYS_FILE CONCURRENCY
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import aiohttp

REGIONS = ("na", "eu", "ap", "cn")


def urls(base: str, app: str, keys_file: Path) -> list[str]:
    keys = [line.strip() for line in keys_file.read_text().splitlines() if line.strip()]
    return [
        f"{base}/{region}/v1/projects/{quote(app, safe='')}/rtls/ingress/streamkeys/"
        f"{quote(key, safe='')}"
        for key in keys
        for region in REGIONS
    ]


async def main(base: str, app: str, keys_file: Path, concurrency: int) -> dict[str, object]:
    todo = urls(base, app, keys_file)
    statuses: Counter[int] = Counter()
    auth = "Basic " + base64.b64encode(b"bench-id:bench-secret").decode("ascii")
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        it: Iterator[str] = iter(todo)

        async def worker() -> None:
            for url in it:
                headers = {"X-Request-ID": str(uuid.uuid4()), "Authorization": auth}
                async with session.delete(url, headers=headers) as response:
                    await response.read()
                    statuses[response.status] += 1

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
    print(json.dumps(asyncio.run(main(base, app, keys, conc))))
