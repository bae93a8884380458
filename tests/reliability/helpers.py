"""Shared helpers for the reliability tests: key files, audit and journal readers, runs.

Everything runs on 127.0.0.1 against the emulator; every wait is bounded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from revoker.models import REGIONS, key_id

APP = "app1"
# Characters that must survive percent-encoding as one path segment (keys are
# printable ASCII unless --allow-non-ascii-keys).
_SPICE = ("", "-_", ".", "/", "%2F", "?x=1", "#frag", "+", "~", "..", "@")


def make_keys(count: int, prefix: str = "k") -> list[str]:
    """``count`` distinct keys, some with characters that are hostile in a URL path."""
    return [f"{prefix}{i:05d}{_SPICE[i % len(_SPICE)]}Zq9" for i in range(count)]


def write_keys_csv(path: Path, keys: Iterable[str], app_id: str = APP) -> Path:
    """A revoker input CSV (also valid as an emulator ``--seed-keys`` file: all regions)."""
    lines = ["stream_key,app_id"]
    lines += [f'"{key}",{app_id}' for key in keys]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def pairs_of(keys: Iterable[str], app_id: str = APP) -> set[tuple[str, str, str]]:
    """(app_id, region, key_id) of every pair the keys make in all four regions."""
    return {(app_id, region, key_id(key)) for key in keys for region in REGIONS}


@dataclass
class AuditRead:
    records: list[dict[str, Any]]
    bad_lines: list[int]  # 1-based numbers of lines that are not a JSON object
    line_count: int


def read_audit(path: Path) -> AuditRead:
    """Every line of an audit log; lines that do not parse are listed, not skipped silently."""
    records: list[dict[str, Any]] = []
    bad: list[int] = []
    count = 0
    if not path.exists():
        return AuditRead(records, bad, 0)
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            count = number
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except ValueError:
                bad.append(number)
                continue
            if isinstance(record, dict):
                records.append(record)
            else:
                bad.append(number)
    return AuditRead(records, bad, count)


def task_records(records: Iterable[dict[str, Any]], event: str = "revoke") -> list[dict[str, Any]]:
    return [r for r in records if r.get("event") == event]


def pair(record: Mapping[str, Any]) -> tuple[str, str, str]:
    return (str(record["app_id"]), str(record["region"]), str(record["key_id"]))


def latest_outcomes(records: Iterable[dict[str, Any]]) -> dict[tuple[str, str, str], str]:
    latest: dict[tuple[str, str, str], str] = {}
    for record in task_records(records):
        latest[pair(record)] = str(record["outcome"])
    return latest


def read_journal(path: Path) -> list[dict[str, Any]]:
    """The emulator's journal: one dict per request it received (API requests only)."""
    if not path.exists():
        return []
    entries = []
    with path.open("rb") as handle:
        for raw in handle:
            if raw.strip():
                entries.append(json.loads(raw))
    return entries


def key_requests(entries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The journal's requests for a key (not the listings of live streams)."""
    return [e for e in entries if e.get("key") is not None]


def journal_pair(entry: Mapping[str, Any]) -> tuple[str, str, str]:
    return (str(entry["app_id"]), str(entry["region"]), key_id(str(entry["key"])))


def attempt_ids(records: Iterable[dict[str, Any]]) -> list[str]:
    return [a["request_id"] for r in records for a in r.get("attempts", [])]


def revoker_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A clean environment for a revoker subprocess (no AGORA_* leaking in from outside)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AGORA_", "REVOKER_")) and k != "JOB_COMPLETION_INDEX"
    }
    env["PYTHONUNBUFFERED"] = "1"
    env["REVOKER_LOG_FORMAT"] = "json"
    env.update(extra or {})
    return env


def revoker_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "revoker", *args]


def run_revoker(
    *args: str, env: Mapping[str, str], timeout: float = 60.0, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        revoker_cmd(*args),
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
        **kwargs,
    )


def wait_for(
    condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.01
) -> None:
    """Poll ``condition`` until true; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def count_lines(path: Path, needle: bytes = b"") -> int:
    """Occurrences of ``needle`` (default: lines) in ``path``; 0 if it does not exist yet."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return 0
    return data.count(needle or b"\n")


def wait_until_stable(path: Path, quiet: float = 0.3, timeout: float = 10.0) -> int:
    """Wait until ``path`` stops growing for ``quiet`` seconds; return its size."""
    deadline = time.monotonic() + timeout
    size = path.stat().st_size if path.exists() else 0
    since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now_size = path.stat().st_size if path.exists() else 0
        if now_size != size:
            size, since = now_size, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return size
    raise AssertionError(f"{path} kept growing for {timeout} s")
