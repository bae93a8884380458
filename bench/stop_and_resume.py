"""Stopping a huge run and resuming over many done pairs: how fast, how big, how much memory.

    python bench/stop_and_resume.py [--keys 1000000] [--code DIR]

1. Stop: a run over ``--keys`` keys (x 4 regions) against the emulator gets SIGTERM
   once 1,000 pairs are recorded; prints the seconds from the signal to the exit,
   the audit log's size and lines, and checks that task lines plus the
   ``not_started`` count account for every pair.
2. Resume memory: an audit log with ``--keys / 4`` keys x 4 regions done, then
   ``revoke --resume --dry-run`` over those keys; prints the peak RSS (VmHWM) with
   and without ``--resume``, and the difference per done pair.

``--code DIR`` runs the revoker package found in DIR (e.g. another checkout) instead.
Generated files go to ``.bench/`` (not committed).
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    CUSTOMER_ID,
    CUSTOMER_SECRET,
    DATA,
    REGIONS,
    client_env,
    iter_keys,
    run_child,
    write_text_keys,
)
from revoker.emulator.process import EmulatorProcess
from revoker.models import key_hint, key_id


def launcher(code: str | None) -> list[str]:
    path = f"sys.path.insert(0, {code!r}); " if code else ""
    return [
        sys.executable,
        "-c",
        f"import sys; {path}sys.argv[0] = 'revoker'; from revoker.cli import run; run()",
    ]


def keys_file(count: int, prefix: str) -> Path:
    path = DATA / f"keys-{prefix}-{count}.txt"
    if not path.exists():
        write_text_keys(path, iter_keys(count, prefix))
    return path


def count_task_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.startswith(b'{"event":"revoke"'))


def stop(count: int, code: str | None) -> None:
    keys = keys_file(count, "stop")
    audit = DATA / "stop.jsonl"
    audit.unlink(missing_ok=True)
    pairs = count * len(REGIONS)
    with EmulatorProcess(
        "--delete-rps", "0", "--latency-ms", "50",
        customer_id=CUSTOMER_ID, customer_secret=CUSTOMER_SECRET, timeout=60,
    ) as emulator:  # fmt: skip
        argv = [*launcher(code), "-q", "revoke", str(keys), "--app-id", "stop"]
        argv += ["--max-rps", "0", "--concurrency", "32", "--audit-log", str(audit)]
        argv += ["--output", "json"]
        proc = subprocess.Popen(
            argv,
            env=client_env(emulator.base_url),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 300
        while (not audit.exists() or count_task_lines(audit) < 1000) and proc.poll() is None:
            if time.monotonic() > deadline:
                proc.kill()
                raise SystemExit("the run did not record 1,000 pairs in 300 s")
            time.sleep(0.2)
        signalled = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        stdout, _ = proc.communicate(timeout=600)
        seconds = time.perf_counter() - signalled
    lines = 0
    task_lines = 0
    not_started = 0
    with audit.open("rb") as handle:
        for raw in handle:
            lines += 1
            record = json.loads(raw)
            if record["event"] == "revoke":
                task_lines += 1
            elif record["event"] == "not_started":
                not_started += record["tasks"]
    summary = json.loads(stdout)
    print(f"1. stop: {pairs:,} pairs, SIGTERM after {task_lines:,} recorded ...")
    print(f"   exit {proc.returncode} ({summary['halt_reason']}) {seconds:.2f} s after the signal")
    print(f"   audit log {audit.stat().st_size / 1e6:,.2f} MB, {lines:,} lines")
    accounted = task_lines + not_started
    print(f"   task lines {task_lines:,} + not_started {not_started:,} = {accounted:,}")
    if accounted != pairs:
        raise SystemExit(f"   {pairs - accounted:,} pairs unaccounted for")


def resume_memory(count: int, code: str | None) -> None:
    keys = count // len(REGIONS)
    source = keys_file(keys, "done")
    audit = DATA / f"done-{keys}.jsonl"
    if not audit.exists():
        with audit.open("w", encoding="utf-8") as handle:
            for key in iter_keys(keys, "done"):
                kid, hint = key_id(key), key_hint(key)
                for region in REGIONS:
                    handle.write(
                        '{"event":"revoke","ts":"2026-01-01T00:00:00.000Z","run_id":"bench",'
                        f'"app_id":"resume","region":"{region}","key_id":"{kid}",'
                        f'"key_hint":"{hint}","outcome":"revoked","http_status":200,'
                        '"request_id":"00000000-0000-0000-0000-000000000000",'
                        '"server_request_id":null,"host":"127.0.0.1","attempts":[],'
                        '"duration_ms":3,"message":null}\n'
                    )
    env = client_env("http://127.0.0.1:9")
    base = [*launcher(code), "-q", "revoke", str(source), "--app-id", "resume", "--dry-run"]
    base += ["--output", "json", "--audit-log", str(audit)]
    plain = run_child(base, env=env, timeout=900)
    resumed = run_child([*base, "--resume"], env=env, timeout=900)
    done = resumed.json()["plan"]["already_done"] if resumed.code == 0 else 0
    pairs = keys * len(REGIONS)
    print(f"2. resume over {pairs:,} done pairs ({done:,} skipped as done)")
    print(f"   peak RSS without --resume {plain.max_rss_mb:,.1f} MB ({plain.wall:.1f} s)")
    print(f"   peak RSS with --resume    {resumed.max_rss_mb:,.1f} MB ({resumed.wall:.1f} s)")
    extra = (resumed.max_rss_mb - plain.max_rss_mb) * 1024 * 1024 / pairs
    print(f"   --resume costs {extra:,.0f} bytes per done pair")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--code", help="directory holding the revoker package to run")
    parser.add_argument("--only", choices=["stop", "resume"])
    args = parser.parse_args()
    DATA.mkdir(exist_ok=True)
    if args.only != "resume":
        stop(args.keys, args.code)
    if args.only != "stop":
        resume_memory(args.keys, args.code)


if __name__ == "__main__":
    main()
