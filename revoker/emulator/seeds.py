"""Seed files of the emulator: the keys and the live streams it starts with.

Both are CSV, UTF-8, with a header row:

* keys (``--seed-keys``): ``stream_key`` plus optional ``app_id`` (default: the
  configured default app ID), ``regions`` (``na;eu``, the syntax of
  :func:`revoker.models.parse_regions`; default all four), ``channel``, ``uid``,
  ``expires_after`` (int seconds, 0 = never, default 0), ``created_at`` (Unix
  seconds, default now). A file without a ``stream_key`` header is read as plain
  text: one key per line, ``#`` comments and blank lines ignored.
* live streams (``--live-streams``): ``stream_key``, ``app_id``, ``region`` (required),
  optional ``channel``, ``uid``, ``sid`` (generated when empty), ``url`` (any push form,
  kept as given) or ``protocol`` (``rtmp``, ``rtmps``, ``srt``, ``srt-custom``, ``whip``:
  the documented URL; default ``rtmp``), ``status`` (``Started`` or ``Running``),
  ``ignore_disconnect`` (true: force-disconnect answers 200 but the stream stays) and
  ``start_after_lists`` (N: the stream starts once N listings of its app and region
  were answered, i.e. during a run).
"""

from __future__ import annotations

import csv
import io
import os
import time
from collections.abc import Iterable
from pathlib import Path

from revoker.emulator.state import EmulatorState, LiveStream, SeedError, StreamKey, new_sid
from revoker.emulator.streams import PROTOCOLS, truthy
from revoker.errors import UsageError
from revoker.models import REGIONS, parse_regions


def _int_field(row: dict[str, str], name: str, default: int) -> int:
    raw = (row.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {value}")
    return value


def _rows(path: str | os.PathLike[str], text: str) -> Iterable[tuple[int, dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text))
    for row in reader:
        if all(not (v or "").strip() for v in row.values() if isinstance(v, str)):
            continue
        if None in row:
            raise SeedError(path, reader.line_num, "more fields than the header")
        yield reader.line_num, {k.strip(): (v or "") for k, v in row.items() if k is not None}


def _read(path: str | os.PathLike[str]) -> str:
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SeedError(path, 0, f"cannot read: {exc}") from exc


def _header(text: str) -> list[str]:
    first = next(csv.reader(io.StringIO(text)), [])
    return [h.strip() for h in first]


def load_seed_keys(
    state: EmulatorState,
    path: str | os.PathLike[str],
    default_app_id: str | None,
    *,
    now: int | None = None,
) -> int:
    """Add the keys of a seed file to ``state``; returns how many (key, region) pairs."""
    text = _read(path)
    created_default = int(time.time()) if now is None else now
    count = 0
    if "stream_key" not in _header(text):
        for lineno, line in enumerate(text.splitlines(), start=1):
            key = line.strip()
            if not key or key.startswith("#"):
                continue
            if not default_app_id:
                raise SeedError(path, lineno, "no app ID: pass --app-id")
            for region in REGIONS:
                state.add_key(region, default_app_id, StreamKey(key, "", "", 0, created_default))
                count += 1
        return count
    for lineno, row in _rows(path, text):
        try:
            key = row.get("stream_key", "")
            if not key.strip():
                raise ValueError("empty stream_key")
            app_id = row.get("app_id", "").strip() or default_app_id
            if not app_id:
                raise ValueError("no app_id in the row and no --app-id")
            regions = parse_regions(row.get("regions", ""))
            expires_after = _int_field(row, "expires_after", 0)
            created_at = _int_field(row, "created_at", created_default)
        except (ValueError, UsageError) as exc:
            raise SeedError(path, lineno, str(exc)) from None
        for region in regions:
            item = StreamKey(
                key, row.get("channel", ""), row.get("uid", ""), expires_after, created_at
            )
            state.add_key(region, app_id, item)
            count += 1
    return count


def load_live_streams(
    state: EmulatorState,
    path: str | os.PathLike[str],
    *,
    now: int | None = None,
) -> int:
    """Add the live streams of a CSV file to ``state``; returns how many."""
    text = _read(path)
    header = _header(text)
    missing = [h for h in ("stream_key", "app_id", "region") if h not in header]
    if missing:
        raise SeedError(path, 1, f"missing column(s): {', '.join(missing)}")
    begin = time.time() if now is None else now
    count = 0
    for lineno, row in _rows(path, text):
        key, app_id = row["stream_key"], row["app_id"].strip()
        region = row["region"].strip().lower()
        if not key.strip():
            raise SeedError(path, lineno, "empty stream_key")
        if not app_id:
            raise SeedError(path, lineno, "empty app_id")
        if region not in REGIONS:
            raise SeedError(path, lineno, f"unknown region {region!r}")
        sid = row.get("sid", "").strip() or new_sid()
        if sid in state.streams:
            raise SeedError(path, lineno, f"duplicate sid {sid!r}")
        protocol = row.get("protocol", "").strip().lower() or "rtmp"
        if protocol not in PROTOCOLS:
            raise SeedError(path, lineno, f"unknown protocol {protocol!r}")
        status = row.get("status", "").strip() or "Running"
        if status not in ("Started", "Running"):
            raise SeedError(path, lineno, f"status must be Started or Running, got {status!r}")
        try:
            start_after = _int_field(row, "start_after_lists", 0)
        except ValueError as exc:
            raise SeedError(path, lineno, str(exc)) from None
        channel = row.get("channel", "")
        state.add_stream(
            LiveStream(
                sid,
                app_id,
                region,
                key,
                channel,
                row.get("uid", ""),
                status=status,
                begin_at=begin,
                protocol=protocol,
                push_url=row["url"] if row.get("url", "").strip() else None,
                ignore_disconnect=truthy(row.get("ignore_disconnect", "")),
                start_after_lists=start_after,
            )
        )
        count += 1
    return count
