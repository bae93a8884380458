"""Shared helpers of the benchmarks: key files, the emulator, child processes, tables."""

from __future__ import annotations

import compileall
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".bench"
BIN = Path(sys.executable).parent
REVOKER = str(BIN / "revoker")
REGIONS = ("na", "eu", "ap", "cn")
CUSTOMER_ID = "bench-id"
CUSTOMER_SECRET = "bench-secret"


def make_keys(n: int, prefix: str = "k") -> list[str]:
    """``n`` distinct, valid-looking stream keys (deterministic)."""
    return list(iter_keys(n, prefix))


def iter_keys(n: int, prefix: str = "k") -> Iterator[str]:
    return (f"{prefix}{i:011d}{'x' * 20}" for i in range(n))


def write_text_keys(path: Path, keys: Iterable[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for key in keys:
            handle.write(key + "\n")
    return path


def write_seed_csv(path: Path, rows: Iterator[tuple[str, str]]) -> Path:
    """A seed CSV (stream_key, app_id) for the emulator: every region of every row."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        handle.write("stream_key,app_id\n")
        for key, app in rows:
            handle.write(f"{key},{app}\n")
    return path


def compile_revoker() -> None:
    """Write revoker's bytecode once, as installing it does (pip compiles what it
    installs): where PYTHONDONTWRITEBYTECODE is set, every revoker child would
    otherwise compile each of its modules again at start-up."""
    compileall.compile_dir(ROOT / "revoker", quiet=1)


def client_env(base_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGORA_", "REVOKER_"))}
    env.update(
        AGORA_BASE_URL=base_url,
        AGORA_CUSTOMER_ID=CUSTOMER_ID,
        AGORA_CUSTOMER_SECRET=CUSTOMER_SECRET,
        REVOKER_LOG_FORMAT="json",
    )
    return env


@dataclass
class ChildResult:
    """A finished child process: exit code, wall seconds, peak RSS, output."""

    code: int
    wall: float
    max_rss_mb: float
    stdout: str
    stderr: str
    started: float  # time.time() just before the fork
    cpu: float  # user + system seconds of the child

    def json(self) -> Any:
        return json.loads(self.stdout)


def run_child(
    argv: Sequence[str], env: dict[str, str] | None = None, timeout: float = 240.0
) -> ChildResult:
    """Run ``argv``; wall time and the child's own peak RSS (wait4 rusage)."""
    out_path = DATA / f"child-{secrets.token_hex(4)}.out"
    err_path = out_path.with_suffix(".err")
    DATA.mkdir(exist_ok=True)
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.time()
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(argv), stdout=out, stderr=err, env=env, cwd=ROOT)
        deadline = time.monotonic() + timeout
        hwm = 0
        while True:
            hwm = max(hwm, _peak_rss_kb(proc.pid))
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.002)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
    stdout = out_path.read_text(encoding="utf-8", errors="replace")
    stderr = err_path.read_text(encoding="utf-8", errors="replace")
    out_path.unlink()
    err_path.unlink()
    cpu = usage.ru_utime + usage.ru_stime
    return ChildResult(proc.returncode, wall, hwm / 1024, stdout, stderr, started, cpu)


_OWN_CMDLINE = Path("/proc/self/cmdline").read_bytes()


def _peak_rss_kb(pid: int) -> int:
    """VmHWM of ``pid`` once it has exec'ed (0 before, or once it is gone).

    Not wait4's ru_maxrss: Linux carries the parent's RSS at fork into it, so a
    child of a big parent (this one, holding a million keys) reports that size.
    """
    try:
        if Path(f"/proc/{pid}/cmdline").read_bytes() == _OWN_CMDLINE:
            return 0
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def revoke_argv(*args: str) -> list[str]:
    return [REVOKER, "-q", "revoke", "--output", "json", *args]


def read_journal(path: Path) -> list[dict[str, Any]]:
    records = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                records.append(json.loads(line))
    return records


def journal_time(record: dict[str, Any]) -> float:
    return datetime.fromisoformat(record["ts"]).timestamp()


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
