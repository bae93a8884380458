"""The timeline's summaries: bounded whatever the log's length or span, counts kept."""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime, timedelta
from typing import Any

from revoker.audit.timeline import MAX_BUCKETS, Histogram, Timeline, ts_ms

START = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> str:
    return (START + timedelta(seconds=seconds)).isoformat(timespec="milliseconds")


def started(run_id: str, seconds: float, resume: bool = False) -> dict[str, Any]:
    return {
        "event": "run_started", "ts": at(seconds), "run_id": run_id, "command": "revoke",
        "options": {"resume": resume},
    }  # fmt: skip


def revoked(run_id: str, seconds: float, region: str = "na", **extra: Any) -> dict[str, Any]:
    return {
        "event": "revoke", "ts": at(seconds), "run_id": run_id, "region": region,
        "app_id": "app1", "key_id": "sha256:" + "0" * 32, "outcome": "revoked",
        "attempts": [{"status": 200}], **extra,
    }  # fmt: skip


def test_ts_is_read_as_utc_milliseconds_and_a_forged_one_is_none() -> None:
    assert ts_ms("2026-01-01T00:00:01.250Z") == ts_ms(at(0)) + 1250  # type: ignore[operator]
    assert ts_ms("t1") is None
    assert ts_ms("2026-01-01T00:00:00") is None  # no zone: no moment
    assert ts_ms(12) is None


def test_buckets_widen_to_stay_bounded_and_keep_every_count() -> None:
    timeline = Timeline()
    timeline.observe(started("r1", 0))
    lines = 50_000
    for i in range(lines):
        timeline.observe(revoked("r1", i * 0.9, region=("na", "eu")[i % 2]))  # 12.5 hours
    assert len(timeline.buckets) <= MAX_BUCKETS
    assert timeline.totals("deleted") == {"na": lines // 2, "eu": lines // 2}
    span = timeline.span_ms()
    assert span is not None
    assert span[1] - span[0] >= 0.9 * (lines - 1) * 1000


def test_a_forged_region_per_line_shares_one_series() -> None:
    timeline = Timeline()
    timeline.observe(started("r1", 0))
    for i in range(1000):
        timeline.observe(revoked("r1", 1, region=f"<script>{i}"))
    assert timeline.totals("deleted") == {"other": 1000}


def test_memory_does_not_grow_with_the_number_of_lines() -> None:
    def held(lines: int) -> int:
        timeline = Timeline()
        tracemalloc.start()
        try:
            timeline.observe(started("r1", 0))
            for i in range(lines):
                timeline.observe(revoked("r1", i * 0.5, attempts=[{"status": 429}, {}]))
            size, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        return size

    small, large = held(5_000), held(50_000)
    assert large < 2 * 1024 * 1024
    assert large < small * 1.5  # ten times the lines, about the same memory


def test_429s_retries_cuts_and_verify_span_are_counted() -> None:
    timeline = Timeline()
    timeline.observe(started("r1", 0))
    timeline.observe(revoked("r1", 1, attempts=[{"status": 429}, {"status": 503}, {"status": 200}]))
    timeline.observe({**revoked("r1", 2), "event": "disconnect", "outcome": "disconnected"})
    timeline.observe({**revoked("r1", 3), "event": "verify", "outcome": "absent"})
    timeline.observe({**revoked("r1", 5), "event": "verify", "outcome": "absent"})
    assert timeline.totals("throttled") == {"na": 1}
    assert timeline.totals("retries") == {"na": 2}
    assert timeline.totals("cut") == {"na": 1}
    run = timeline.runs["r1"]
    assert (run.verify_first_ms, run.verify_last_ms) == (ts_ms(at(3)), ts_ms(at(5)))
    assert run.halted  # never finished


def test_429s_and_retries_of_the_live_stream_listings_are_counted_too() -> None:
    timeline = Timeline()
    timeline.observe(started("r1", 0))
    listing = {"event": "listing", "ts": at(0.5), "run_id": "r1", "region": "eu"}
    timeline.observe({**listing, "outcome": "listed", "attempts": [{"status": 429}, {}]})
    assert timeline.totals("throttled") == {"eu": 1}
    assert timeline.totals("retries") == {"eu": 1}
    assert timeline.totals("deleted") == {}


def test_time_to_revoke_of_a_resumed_run_counts_from_the_first_run() -> None:
    timeline = Timeline()
    timeline.start_log("a.jsonl")
    timeline.observe(started("r1", 0))
    timeline.observe({"event": "run_finished", "ts": at(1), "run_id": "r1",
                      "exit_code": 3, "halt_reason": "auth_rejected"})  # fmt: skip
    timeline.observe(started("r2", 60, resume=True))
    timeline.observe(revoked("r2", 61))
    assert timeline.runs["r1"].halted
    assert timeline.time_to_revoke.max_ms == 61_000


def test_histogram_quantiles_are_within_one_percent_and_max_is_exact() -> None:
    histogram = Histogram()
    for ms in range(1, 10_001):
        histogram.add(ms)
    p50, p90 = histogram.quantile(0.5), histogram.quantile(0.9)
    assert p50 is not None
    assert p90 is not None
    assert abs(p50 - 5000) <= 50
    assert abs(p90 - 9000) <= 90
    assert histogram.max_ms == 10_000
    assert Histogram().quantile(0.5) is None
