"""``report --format html``: the page says what the text report says, escapes every string
from the log, never shows a key or a secret, and stays small however large the log."""

from __future__ import annotations

import json
import tracemalloc
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from revoker.audit.merge import build_report
from revoker.audit.timeline import Timeline
from revoker.cli import main
from revoker.models import key_hint, key_id
from revoker.render.html import MAX_ROWS_SHOWN, render_html

HOSTILE = '<script>alert(1)</script><a href="javascript:alert(2)">x</a>\x1b[31m"\'&'
FULL_KEY = "leakedStreamKey-0001-TOPSECRET"


class Page(HTMLParser):
    """Every start tag with its attributes, and the page's text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def count(self, tag: str, cls: str = "") -> int:
        return sum(
            1
            for name, attrs in self.tags
            if name == tag and (not cls or cls in (attrs.get("class") or "").split())
        )

    @property
    def body(self) -> str:
        return "".join(self.text)


def record(event: str, ts: str, **fields: Any) -> str:
    line = {
        "event": event, "ts": ts, "run_id": "r1", "app_id": "app1", "region": "na",
        "key_id": key_id("k-" + ts), "key_hint": "k-20...00Z", "outcome": "revoked",
        "http_status": 200, "request_id": "req-1", "server_request_id": "srv-1",
        "attempts": [{"request_id": "req-1", "status": 200}], "message": None, **fields,
    }  # fmt: skip
    return json.dumps(line) + "\n"


def run_line(event: str, run_id: str, ts: str, **fields: Any) -> str:
    return json.dumps({"event": event, "ts": ts, "run_id": run_id, **fields}) + "\n"


def write(path: Path, *lines: str, finished: bool = True) -> Path:
    head = run_line("run_started", "r1", "2026-01-01T00:00:00.000Z", command="revoke")
    tail = run_line("run_finished", "r1", "2026-01-01T00:01:00.000Z", exit_code=0)
    path.write_text(head + "".join(lines) + (tail if finished else ""), encoding="utf-8")
    return path


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["report", *args], env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def page_of(path: Path) -> str:
    timeline = Timeline()
    report = build_report([path], timeline)
    return render_html(report, timeline)


def test_the_page_carries_the_text_reports_verdict_and_counts(tmp_path: Path) -> None:
    log = write(
        tmp_path / "a.jsonl",
        record("revoke", "2026-01-01T00:00:01.000Z"),
        record("revoke", "2026-01-01T00:00:02.000Z", region="eu"),
        record(
            "revoke",
            "2026-01-01T00:00:03.000Z",
            region="ap",
            outcome="failed",
            http_status=503,
            message="Service overload",
        ),
    )
    code, text = run(str(log))
    html_code, html = run(str(log), "--format", "html")
    assert code == html_code == 1
    verdict = text.splitlines()[0].removeprefix("revoker report: ")
    page = Page(html)
    assert verdict == "1 of 3 tasks NOT done (failed, not attempted, or still present)"
    assert verdict in page.body
    assert "Service overload" in page.body
    counts = [tag for tag in page.tags if tag[0] == "table" and tag[1].get("id") == "counts-revoke"]
    assert counts
    assert page.count("svg") == 1
    assert page.count("polyline", "step") == 2  # na and eu each deleted a key


def test_the_not_found_verdict_is_the_same_words(tmp_path: Path) -> None:
    log = write(
        tmp_path / "a.jsonl",
        *(
            record(
                "revoke", "2026-01-01T00:00:01.000Z", region=r, outcome="absent", http_status=404
            )
            for r in ("na", "eu", "ap", "cn")
        ),
    )
    _, text = run(str(log))
    _, html = run(str(log), "--format", "html")
    verdict = text.splitlines()[0].removeprefix("revoker report: ")
    assert "NOT FOUND" in verdict
    assert verdict in Page(html).body
    assert 'id="not-found"' in html
    assert "its only key was found in no region" in Page(html).body  # the text report's words
    assert "its only key was found in no region" in text


def test_every_string_from_a_forged_log_is_text_and_no_key_or_secret_shows(
    tmp_path: Path,
) -> None:
    fields = {
        "app_id": HOSTILE, "region": HOSTILE, "key_hint": FULL_KEY, "key_id": HOSTILE,
        "outcome": HOSTILE, "http_status": HOSTILE, "request_id": HOSTILE,
        "server_request_id": HOSTILE, "message": HOSTILE + " " + FULL_KEY, "sid": HOSTILE,
        "protocol": HOSTILE, "key": FULL_KEY, "attempts": [{"request_id": HOSTILE}],
        "new_key_hint": "the-new-key-in-full-0002",
    }  # fmt: skip
    log = write(
        tmp_path / "a.jsonl",
        run_line("run_started", HOSTILE, "2026-01-01T00:00:00.500Z", command=HOSTILE),
        *(
            record(e, "2026-01-01T00:00:01.000Z", **fields)
            for e in ("revoke", "verify", "disconnect", "rotate")
        ),
        record("disconnect", "2026-01-01T00:00:02.000Z", outcome="disconnected", sid=HOSTILE),
        record("rotate", "2026-01-01T00:00:03.000Z", outcome="unknown", message=HOSTILE),
        record("revoke", HOSTILE, message=HOSTILE),
    )
    env = {"AGORA_CUSTOMER_ID": "cust", "AGORA_CUSTOMER_SECRET": "s3cr3t-value-abc"}
    leaked = {
        "event": "revoke", "ts": "2026-01-01T00:00:04.000Z", "run_id": "r1", "app_id": "a",
        "region": "na", "key_id": "k", "key_hint": "***", "outcome": "failed",
        "message": env["AGORA_CUSTOMER_SECRET"],
    }  # fmt: skip
    log.write_text(log.read_text() + json.dumps(leaked) + "\n")
    _, html = run(str(log), "--format", "html", env=env)
    page = Page(html)
    assert page.count("script") == 0
    assert page.count("a") == 0
    assert page.count("iframe") == page.count("img") == page.count("link") == 0
    attrs = [(k, v or "") for _tag, a in page.tags for k, v in a.items()]
    assert not [k for k, _v in attrs if k.startswith("on") or k in ("href", "src", "xlink:href")]
    assert not [v for _k, v in attrs if "javascript:" in v or "<" in v]
    assert "<script>alert(1)</script>" in page.body  # shown as text
    assert 'href="javascript:alert(2)"' in page.body
    assert "\x1b" not in html
    assert "\\x1b[31m" in page.body
    assert FULL_KEY not in html
    assert "the-new-key-in-full-0002" not in html
    assert key_hint(FULL_KEY) in page.body
    assert "s3cr3t-value-abc" not in html


def test_the_page_is_self_contained_and_forbids_loading_anything(tmp_path: Path) -> None:
    html = page_of(write(tmp_path / "a.jsonl", record("revoke", "2026-01-01T00:00:01.000Z")))
    page = Page(html)
    [csp] = [a for t, a in page.tags if t == "meta" and a.get("http-equiv")]
    assert "default-src 'none'" in (csp.get("content") or "")
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in html


def test_large_logs_show_a_stated_cap_of_rows(tmp_path: Path) -> None:
    streams = 2 * MAX_ROWS_SHOWN + 5
    log = write(
        tmp_path / "a.jsonl",
        *(
            record(
                "disconnect",
                f"2026-01-01T00:00:{i % 60:02d}.{i % 1000:03d}Z",
                outcome="disconnected",
                sid=f"S{i}",
                protocol="rtmp",
            )
            for i in range(streams)
        ),
    )
    html = page_of(log)
    page = Page(html)
    assert f"Live streams cut ({streams})" in page.body
    assert f"The first {MAX_ROWS_SHOWN} of {streams} streams are shown." in page.body
    assert html.count("<td><code>S") == MAX_ROWS_SHOWN
    assert page.count("path", "cut") >= 1


def test_an_interrupted_and_resumed_run_is_marked_on_the_timeline(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    log.write_text(
        run_line("run_started", "r1", "2026-01-01T00:00:00.000Z", command="revoke")
        + run_line("run_finished", "r1", "2026-01-01T00:00:01.000Z", exit_code=3,
                   halt_reason="auth_rejected")
        + run_line("run_started", "r2", "2026-01-01T00:05:00.000Z", command="revoke",
                   options={"resume": True})
        + record("revoke", "2026-01-01T00:05:01.000Z", run_id="r2",
                 attempts=[{"status": 429}, {"status": 200}])
        + record("verify", "2026-01-01T00:05:03.000Z", run_id="r2", outcome="absent")
        + run_line("run_finished", "r2", "2026-01-01T00:05:04.000Z", exit_code=0)
    )  # fmt: skip
    page = Page(page_of(log))
    assert page.count("line", "halt") == 1
    assert page.count("line", "resume") == 1
    assert page.count("rect", "verify-pass") == 1
    assert page.count("rect", "throttled") == 1
    assert page.count("rect", "retry") == 1
    assert "interrupted: auth_rejected" in page.body
    assert "5.0 min" in page.body  # time to revoke counts the wait for new credentials


def test_verify_puts_the_tamper_check_and_head_on_the_page(tmp_path: Path) -> None:
    from revoker.audit.log import AuditLog
    from revoker.models import Outcome, Task, TaskResult

    path = tmp_path / "audit.jsonl"
    log = AuditLog.open(path, "run-1")
    log.run_started("revoke", {"resume": False}, {"tasks": 1})
    log.task("revoke", TaskResult(Task("app1", "na", "key-000001-abcdef"), Outcome.REVOKED))
    log.run_finished(command="revoke", exit_code=0, halt_reason=None)
    log.close()
    code, html = run(str(path), "--format", "html", "--verify")
    assert "tamper check (--verify)" in html
    assert "audit head <code>" in html
    assert "nothing anchors the end of this log" in html  # no --expect-head given
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace('"na"', '"eu"')
    path.write_text("\n".join(lines) + "\n")
    code, html = run(str(path), "--format", "html", "--verify")
    assert code == 4
    assert "<strong>FAILED</strong>" in html


def test_an_unreadable_log_is_exit_2_with_no_page(tmp_path: Path) -> None:
    code, out = run(str(tmp_path / "missing.jsonl"), "--format", "html")
    assert code == 2
    assert "<html" not in out


@pytest.mark.slow
def test_the_page_adds_little_memory_to_the_report_itself(tmp_path: Path) -> None:
    def log_of(lines: int) -> Path:
        path = tmp_path / f"{lines}.jsonl"
        with path.open("w") as out:
            out.write(run_line("run_started", "r1", "2026-01-01T00:00:00.000Z", command="revoke"))
            for i in range(lines):
                ts = f"2026-01-01T00:{i // 1000 % 60:02d}:{i % 60:02d}.{i % 1000:03d}Z"
                region = ("na", "eu", "ap", "cn")[i % 4]
                out.write(record("revoke", ts, key_id=key_id(f"k{i}"), region=region))
            out.write(run_line("run_finished", "r1", "2026-01-02T00:00:00.000Z", exit_code=0))
        return path

    def peak(path: Path, html: bool) -> int:
        tracemalloc.start()
        try:
            timeline = Timeline() if html else None
            report = build_report([path], timeline)
            if timeline is not None:
                render_html(report, timeline)
            _, top = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        return top

    small, large = log_of(1_000), log_of(10_000)
    added_small = peak(small, True) - peak(small, False)
    added_large = peak(large, True) - peak(large, False)
    # Bounded summaries and capped tables (the template's own cost aside), not another
    # copy of the records: ten times the lines, about the same memory added.
    assert added_large < added_small * 1.3 + 100_000, (added_small, added_large)


def test_rotate_pairs_are_listed_with_the_new_keys_hint_and_unknown_ones_called_out(
    tmp_path: Path,
) -> None:
    log = write(
        tmp_path / "a.jsonl",
        record("rotate", "2026-01-01T00:00:01.000Z", outcome="rotated", phase="result",
               new_key_hint="nEwK...9zQ", new_key_id=key_id("new")),
        record("rotate", "2026-01-01T00:00:02.000Z", region="eu", outcome="unknown",
               phase="result", message="the create's answer was lost"),
    )  # fmt: skip
    page = Page(page_of(log))
    assert "Keys rotated (2, 1 unknown)" in page.body
    assert "nEwK...9zQ" in page.body
    assert "1 pair(s) unknown: the create's answer was lost" in page.body
    assert [a.get("id") for t, a in page.tags if t == "table"].count("rotated") == 1


def test_only_streams_confirmed_gone_are_counted_as_cut(tmp_path: Path) -> None:
    log = write(
        tmp_path / "a.jsonl",
        record("disconnect", "2026-01-01T00:00:01.000Z", outcome="disconnected", sid="sid-cut",
               listing="after", protocol="rtmp"),
        record("disconnect", "2026-01-01T00:00:02.000Z", region="eu", outcome="failed",
               sid="sid-live", listing="before", left_running=True,
               message="left running: no live stream matched this key"),
        record("disconnect", "2026-01-01T00:00:03.000Z", region="ap", outcome="failed",
               sid="sid-stuck", message="still live after force-disconnect"),
    )  # fmt: skip
    page = Page(page_of(log))
    assert "Live streams cut (1)" in page.body
    streams = page.body[page.body.index("Live streams cut") : page.body.index("Runs (")]
    assert "sid-cut" in streams
    assert "sid-live" not in streams
    assert "sid-stuck" not in streams
    # The streams not cut are problems, with their reason.
    problems = page.body[page.body.index("Problems") : page.body.index("Live streams cut")]
    assert "left running" in problems
    assert "still live" in problems
