"""Peak memory and time of ``revoker report`` over a 1,000,000-line audit log: text
against html (the page must need no more than the report itself).

The log (in .bench/, not committed) is made here: a revoke run of 250,000 keys in
four regions, one line per pair as the writer makes them, 2% of them with a 429
and a retry, over 40 minutes of timestamps. Usage: bench/report_memory.py [LINES]
"""

from __future__ import annotations

import hashlib
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import DATA, REVOKER, run_child

REGIONS = ("na", "eu", "ap", "cn")
START = datetime(2026, 1, 1, tzinfo=UTC)


def stamp(seconds: float) -> str:
    return (
        (START + timedelta(seconds=seconds))
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def write_log(path: Path, lines: int) -> None:
    pairs = lines - 2
    span = 40 * 60.0
    with path.open("w", encoding="utf-8") as out:
        out.write(json.dumps({
            "event": "run_started", "ts": stamp(0), "run_id": "bench-run",
            "command": "revoke", "options": {"resume": False}, "counts": {"tasks": pairs},
        }) + "\n")  # fmt: skip
        for i in range(pairs):
            kid = "sha256:" + hashlib.sha256(str(i // 4).encode()).hexdigest()[:32]
            rid = f"{i:08x}-0000-4000-8000-000000000000"
            attempts = [{"request_id": rid, "host": "api.agora.io", "status": 200, "ms": 41,
                         "server_request_id": rid}]  # fmt: skip
            if i % 50 == 0:
                attempts.insert(0, {"request_id": rid[:-1] + "1", "host": "api.agora.io",
                                    "status": 429, "ms": 12})  # fmt: skip
            out.write(json.dumps({
                "event": "revoke", "ts": stamp(i * span / pairs), "run_id": "bench-run",
                "app_id": "9d2498880e934632b38b0a68fa2f1622", "region": REGIONS[i % 4],
                "key_id": kid, "key_hint": "leak...XYZ", "outcome": "revoked",
                "http_status": 200, "request_id": rid, "server_request_id": rid,
                "host": "api.agora.io", "attempts": attempts, "duration_ms": 41,
                "message": None,
            }) + "\n")  # fmt: skip
        out.write(json.dumps({
            "event": "run_finished", "ts": stamp(span), "run_id": "bench-run",
            "command": "revoke", "exit_code": 0, "halt_reason": None,
        }) + "\n")  # fmt: skip


def main() -> int:
    lines = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    DATA.mkdir(exist_ok=True)
    log = DATA / f"report-{lines}.jsonl"
    if not log.exists():
        write_log(log, lines)
    print(f"log: {log} ({lines:,} lines, {log.stat().st_size / 1e6:.0f} MB)")
    results = {}
    for fmt in ("text", "html"):
        result = run_child([REVOKER, "report", str(log), "--format", fmt], timeout=900)
        assert result.code == 0, result.stderr[-2000:]
        results[fmt] = result
        print(
            f"report --format {fmt}: peak RSS {result.max_rss_mb:.0f} MB, "
            f"wall {result.wall:.1f} s, "
            f"output {len(result.stdout.encode()) / 1000:.0f} kB"
        )
    ratio = results["html"].max_rss_mb / results["text"].max_rss_mb
    print(f"html / text peak RSS: {ratio:.3f}")
    return 0 if ratio <= 1.10 else 1


if __name__ == "__main__":
    sys.exit(main())
