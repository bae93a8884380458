"""``revoker report --format html``: one self-contained page for an incident review.

The verdict in the text report's words, an SVG timeline drawn from the log's
own timestamps, and the tables (counts, problems, streams cut, rotated
pairs). Everything from the log reaches the page through jinja2 with
autoescaping and :func:`printable` (logs can be forged: no markup, no link, no
terminal escape from them); keys only as hints and key IDs, whatever the log
holds. The page loads nothing: no script, font, style or image from anywhere,
and its Content-Security-Policy forbids any.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Any

import jinja2

from revoker import __version__
from revoker.audit.merge import AuditReport, event_rank, problem_fields, region_sorted
from revoker.audit.timeline import Histogram, Timeline
from revoker.models import REGIONS
from revoker.models import key_hint as hint_of
from revoker.redact import MASK, printable, redact
from revoker.render.report import MAX_PROBLEMS_SHOWN, _count_rows
from revoker.render.summary import app_not_found

# Rows of successful pairs (streams cut, keys rotated) shown at most; the page says so.
MAX_ROWS_SHOWN = 200
MAX_TEXT = 300
# Runs drawn and listed at most (a forged log can hold any number).
MAX_RUNS_SHOWN = 100
_HINT = re.compile(r".{4}\.\.\..{3}")
_KEY_ID = re.compile(r"sha256:[0-9a-f]{32}")

# Plot geometry (SVG user units).
WIDTH, LEFT, RIGHT, TOP, PLOT_H, LANE_H = 960, 56, 16, 16, 200, 26
LANES = ("cuts", "429", "retries")


@dataclass(frozen=True)
class ChainStatus:
    """One log's tamper check (``--verify``), as the page shows it."""

    path: str
    ok: bool
    status: str
    head: str
    detail: str = ""
    note: str = ""


class _Cleaner:
    """Text from one record: its own plain key (``--reveal-keys``) blanked, then printable."""

    def __init__(self, record: dict[str, Any], secrets: tuple[str, ...]) -> None:
        key = record.get("key")
        self.secrets = (*secrets, key) if isinstance(key, str) and key else secrets

    def text(self, value: Any, limit: int = MAX_TEXT) -> str:
        if value is None:
            return ""
        text = printable(redact(str(value), self.secrets))
        return text if len(text) <= limit else text[:limit] + "…"

    def hint(self, value: Any) -> str:
        """A key hint; anything longer than a hint (a forged full key) is hinted again."""
        text = str(value or "")
        hint = text if text == MASK or _HINT.fullmatch(text) else hint_of(text)
        return printable(redact(hint, self.secrets))


def _key_id(value: Any) -> str:
    return value if isinstance(value, str) and _KEY_ID.fullmatch(value) else "(invalid)"


def _clock(ms: int, with_date: bool = False) -> str:
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    text = moment.strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S")
    return text + f".{ms % 1000:03d}" if not with_date else text + " UTC"


def _duration(ms: int | None) -> str:
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms} ms"
    if ms < 120_000:
        return f"{ms / 1000:.1f} s"
    return f"{ms / 60_000:.1f} min"


def _stats(name: str, histogram: Histogram, what: str) -> dict[str, Any]:
    return {
        "name": name,
        "what": what,
        "count": histogram.count,
        "p50": _duration(histogram.quantile(0.5)),
        "p90": _duration(histogram.quantile(0.9)),
        "max": _duration(histogram.max_ms if histogram.count else None),
    }


def _region_rank(region: str) -> tuple[int, str]:
    return (REGIONS.index(region) if region in REGIONS else len(REGIONS), region)


def _region_class(region: str) -> str:
    return f"r{REGIONS.index(region)}" if region in REGIONS else "rx"


def _svg(timeline: Timeline) -> dict[str, Any] | None:
    """The timeline's shapes: numbers and fixed class names; labels are escaped later."""
    span = timeline.span_ms()
    if span is None:
        return None
    t0, t1 = span
    t1 = max(t1, t0 + 1)
    plot_w = WIDTH - LEFT - RIGHT

    def x(ms: int) -> float:
        return round(LEFT + (ms - t0) / (t1 - t0) * plot_w, 1)

    width = timeline.width_ms
    ordered = sorted(timeline.buckets.items())
    deleted = timeline.totals("deleted")
    top = max(deleted.values(), default=0) or 1
    lane_y = {name: TOP + PLOT_H + 12 + i * LANE_H for i, name in enumerate(LANES)}

    def y(count: int) -> float:
        return round(TOP + PLOT_H - count / top * PLOT_H, 1)

    steps = []
    for region in sorted(deleted, key=_region_rank):
        total, points = 0, [f"{x(t0)},{y(0)}"]
        for index, counts in ordered:
            n = counts.get(("deleted", region), 0)
            if n:
                at = x(index * width)
                points += [f"{at},{y(total)}", f"{at},{y(total + n)}"]
                total += n
        points.append(f"{x(t1)},{y(total)}")
        steps.append({"cls": _region_class(region), "region": region, "points": " ".join(points)})
    cuts, bars = [], []
    peak = {
        name: max((sum(n for (s, _r), n in c.items() if s == name) for _i, c in ordered), default=0)
        or 1
        for name in ("throttled", "retries")
    }
    for index, counts in ordered:
        at, when = x(index * width), _clock(index * width)
        for (series, region), n in sorted(counts.items()):
            if series == "cut":
                cuts.append(
                    {
                        "cls": _region_class(region),
                        "x": at,
                        "y": lane_y["cuts"] + 4,
                        "title": f"{n} stream(s) cut in {region} at {when}",
                    }
                )
        for series, lane, cls in (
            ("throttled", "429", "throttled"),
            ("retries", "retries", "retry"),
        ):
            n = sum(v for (s, _r), v in counts.items() if s == series)
            if n:
                h = max(2.0, round(n / peak[series] * (LANE_H - 6), 1))
                bars.append(
                    {
                        "cls": cls,
                        "x": at,
                        "y": round(lane_y[lane] + LANE_H - 4 - h, 1),
                        "w": max(2.0, round(width / (t1 - t0) * plot_w, 1)),
                        "h": h,
                        "title": f"{n} {'HTTP 429' if series == 'throttled' else 'retries'} "
                        f"at {when}",
                    }
                )
    bands, marks = [], []
    for run in list(timeline.runs.values())[:MAX_RUNS_SHOWN]:
        if run.verify_first_ms is not None and run.verify_last_ms is not None:
            left, right = x(run.verify_first_ms), x(run.verify_last_ms + width)
            bands.append(
                {
                    "x": left,
                    "w": max(2.0, round(right - left, 1)),
                    "title": f"verify pass of run {run.run_id}: "
                    f"{_clock(run.verify_first_ms)} to {_clock(run.verify_last_ms)}",
                }
            )
        if run.resume and run.start_ms is not None:
            marks.append(
                {
                    "cls": "resume",
                    "x": x(run.start_ms),
                    "label": "resumed",
                    "title": f"run {run.run_id} resumed at {_clock(run.start_ms)}",
                }
            )
        if run.halted and run.start_ms is not None:
            end = run.end_ms if run.end_ms is not None else t1
            why = run.halt_reason or ("never finished" if run.end_ms is None else "halted")
            marks.append(
                {
                    "cls": "halt",
                    "x": x(end),
                    "label": f"interrupted: {why}",
                    "title": f"run {run.run_id} stopped at {_clock(end)}: {why}",
                }
            )
    ticks = [
        {"x": x(t0 + (t1 - t0) * i // 4), "label": _clock(t0 + (t1 - t0) * i // 4)}
        for i in range(5)
    ]
    return {
        "width": WIDTH,
        "height": lane_y[LANES[-1]] + LANE_H + 24,
        "left": LEFT,
        "right": WIDTH - RIGHT,
        "top": TOP,
        "bottom": TOP + PLOT_H,
        "lanes": [{"name": name, "y": lane_y[name]} for name in LANES],
        "lane_h": LANE_H,
        "max_deleted": top,
        "steps": steps,
        "cuts": cuts,
        "bars": bars,
        "bands": bands,
        "marks": marks,
        "ticks": ticks,
        "start": _clock(t0, with_date=True),
        "end": _clock(t1, with_date=True),
        "bucket": _duration(width),
    }


def _capped(
    report: AuditReport, event: str, outcomes: tuple[str, ...] | None = None
) -> tuple[list[dict[str, Any]], int]:
    """The first MAX_ROWS_SHOWN latest records of ``event`` (with one of ``outcomes``),
    and how many there are: only the rows shown are read again."""
    shown = [r for _e, _r, r in islice(report.iter_latest(event, outcomes), MAX_ROWS_SHOWN)]
    return shown, report.latest_count(event, outcomes)


def _task_row(record: dict[str, Any], secrets: tuple[str, ...]) -> dict[str, str]:
    clean = _Cleaner(record, secrets)
    fields = problem_fields(record)
    return {
        "event": clean.text(fields["event"]),
        "region": clean.text(fields["region"]),
        "app_id": clean.text(fields["app_id"]),
        "key_hint": clean.hint(fields["key_hint"]),
        "key_id": _key_id(fields["key_id"]),
        "sid": clean.text(fields["sid"]),
        "outcome": clean.text(fields["outcome"]),
        "http_status": clean.text(fields["http_status"]),
        "request_id": clean.text(", ".join(str(i) for i in fields["request_ids"][-3:])),
        "server_request_id": clean.text(", ".join(map(str, fields["server_request_ids"][-3:]))),
        "message": clean.text(fields["message"]),
        "ts": clean.text(fields["ts"]),
        "protocol": clean.text(record.get("protocol")),
        "new_key": clean.hint(record.get("new_key_hint")) if record.get("new_key_hint") else "",
    }


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("revoker.render", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def render_html(
    report: AuditReport,
    timeline: Timeline,
    chain: list[ChainStatus] | None = None,
    secrets: Iterable[str] = (),
) -> str:
    """The page; ``chain`` is the ``--verify`` result per log, ``secrets`` are blanked."""
    hidden = tuple(s for s in secrets if s)
    counts = report.counts()
    tables = []
    for event in sorted(counts, key=event_rank):
        outcomes, rows = _count_rows(region_sorted(counts[event]))
        tables.append({"event": event, "outcomes": outcomes, "rows": rows})
    problems = report.problems(MAX_PROBLEMS_SHOWN)
    # Only streams confirmed gone: one left running or still live is a problem, not a cut.
    cut, cut_count = _capped(report, "disconnect", ("disconnected",))
    rotated, rotated_count = _capped(report, "rotate", ("rotated", "unknown"))
    unknown = report.latest_count("rotate", ("unknown",))
    keys = report.key_verdicts()
    runs = []
    for run_id, run in list(report.runs.items())[:MAX_RUNS_SHOWN]:
        span = timeline.runs.get(run_id)
        clean = _Cleaner(run, hidden)
        runs.append(
            {
                "run_id": clean.text(run_id),
                "command": clean.text(run.get("command")),
                "log": clean.text(run.get("log")),
                "started": clean.text(run.get("started")),
                "finished": clean.text(run.get("finished")) or "never finished",
                "exit_code": clean.text(run.get("exit_code")),
                "resume": bool(run.get("resume")),
                "halt": clean.text(span.halt_reason if span else ""),
            }
        )
    return (
        _environment()
        .get_template("report.html")
        .render(
            version=__version__,
            verdict=printable(report.verdict()),
            ok=report.exit_code == 0,
            exit_code=report.exit_code,
            chain=chain,
            logs=[
                {"path": printable(log.path), "lines": log.lines, "torn": log.torn}
                for log in report.logs
            ],
            run_count=len(report.runs),
            tasks=report.task_count,
            superseded=report.superseded,
            torn=report.torn,
            untimed=timeline.untimed,
            tables=tables,
            not_started=report.pending_not_started(),
            svg=_svg(timeline),
            stats=[
                _stats("time to revoke", timeline.time_to_revoke, "pairs deleted"),
                _stats("time to cut", timeline.time_to_cut, "streams cut"),
            ],
            problems=[_task_row(r, hidden) for r in problems],
            problem_count=report.problem_count,
            max_problems=MAX_PROBLEMS_SHOWN,
            cut=[_task_row(r, hidden) for r in cut],
            cut_count=cut_count,
            rotated=[_task_row(r, hidden) for r in rotated],
            rotated_count=rotated_count,
            unknown=unknown,
            max_rows=MAX_ROWS_SHOWN,
            keys=keys,
            not_found=[
                {
                    "app_id": printable(redact(k.app_id, hidden)),
                    "key_hint": _Cleaner({}, hidden).hint(k.key_hint),
                    "key_id": _key_id(k.key_id),
                    "regions": printable(",".join(k.regions)),
                }
                for k in keys.samples[:MAX_ROWS_SHOWN]
            ],
            not_found_causes=[printable(c) for c in keys.causes()],
            apps_not_found=[
                (printable(a), printable(app_not_found(n, "these logs")))
                for a, n in keys.apps_not_found
            ],
            runs=runs,
        )
    )
