"""Peak memory and time of ``revoker report`` over a 1,000,000-line audit log: text
against html and junit (neither may need more than the report itself); and, as ``make
bench`` section 10 (:func:`report_bench`), before and after bounded memory.

The log (in .bench/, not committed) is made here: a revoke run of 250,000 keys in
four regions, one line per pair as the writer makes them, 2% of them with a 429
and a retry, over 40 minutes of timestamps. Usage: bench/report_memory.py [LINES]
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess  # nosec B404: git archive of a fixed revision, no shell
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import DATA, REVOKER, ROOT, ChildResult, run_child

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


# The last revision whose report held the latest record of every task: "before".
BEFORE_REVISION = "6b87755"
LINES = 1_000_000


def _before(argv: list[str]) -> ChildResult | None:
    """``revoker report`` as BEFORE_REVISION had it (its revoker/ from git, run with
    -P so this checkout's package does not shadow it); None without git."""
    tree = DATA / f"report-before-{BEFORE_REVISION}"
    if not (tree / "revoker").exists():
        tree.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(  # nosec B603 B607
            ["git", "-C", str(ROOT), "archive", BEFORE_REVISION, "revoker"],
            capture_output=True,
            check=False,
        )
        if archive.returncode != 0:
            return None
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)  # nosec
    code = "import sys; from revoker.cli import main; sys.argv[0] = 'revoker'; main()"
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return run_child([sys.executable, "-P", "-c", code, *argv], env=env, timeout=1800)


def report_bench(row: Callable[..., None], broken: list[str]) -> None:
    """Section 10: report and report --verify over a 1M-line log, before and after."""
    print(f"10. report over a {LINES:,}-line audit log, before ({BEFORE_REVISION}) and after")
    DATA.mkdir(exist_ok=True)
    log = DATA / f"report-{LINES}.jsonl"
    if not log.exists():
        write_log(log, LINES)
    for label, extra in (("report", []), ("report --verify", ["--verify"])):
        argv = ["report", str(log), *extra]
        after = run_child([REVOKER, *argv], timeout=1800)
        before = _before(argv)
        if after.code != 0 and not (extra and after.code == 4):
            broken.append(f"{label}: exit {after.code}: {after.stderr[-300:]}")
        row("10", f"{label}: peak RSS after", after.max_rss_mb, "MB", "<= 200 MB",
            after.max_rss_mb <= 200)  # fmt: skip
        if before is None:
            row("10", f"{label}: wall after", after.wall, "s", "(no git: no before)")
            continue
        if before.stdout != after.stdout or before.code != after.code:
            broken.append(f"{label}: output or exit code differs from {BEFORE_REVISION}")
        row("10", f"{label}: peak RSS before", before.max_rss_mb, "MB")
        row("10", f"{label}: wall before", before.wall, "s")
        ratio = after.wall / before.wall
        row("10", f"{label}: wall after", after.wall, "s", "<= 0.70 x before", ratio <= 0.70,
            f"{ratio:.2f}x before, RSS {after.max_rss_mb / before.max_rss_mb:.3f}x")  # fmt: skip


def main() -> int:
    lines = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    DATA.mkdir(exist_ok=True)
    log = DATA / f"report-{lines}.jsonl"
    if not log.exists():
        write_log(log, lines)
    print(f"log: {log} ({lines:,} lines, {log.stat().st_size / 1e6:.0f} MB)")
    results = {}
    for fmt in ("text", "html", "junit"):
        result = run_child([REVOKER, "report", str(log), "--format", fmt], timeout=900)
        assert result.code == 0, result.stderr[-2000:]
        results[fmt] = result
        print(
            f"report --format {fmt}: peak RSS {result.max_rss_mb:.0f} MB, "
            f"wall {result.wall:.1f} s, "
            f"output {len(result.stdout.encode()) / 1000:.0f} kB"
        )
    ratios = {
        fmt: results[fmt].max_rss_mb / results["text"].max_rss_mb for fmt in ("html", "junit")
    }
    for fmt, ratio in ratios.items():
        print(f"{fmt} / text peak RSS: {ratio:.3f}")
    return 0 if max(ratios.values()) <= 1.10 else 1


if __name__ == "__main__":
    sys.exit(main())
