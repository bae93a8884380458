"""``revoker streams``: the live streams matching the keys, as text or JSON."""

from __future__ import annotations

import json

from revoker.redact import printable, printable_lines
from revoker.render.table import table
from revoker.results import HaltReason, StreamsReport


def render_streams(report: StreamsReport, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report.to_dict(), indent=2)
    lines: list[str] = []
    if report.rows:
        rows = [
            ["region", "sid", "key", "match", "protocol", "channel", "uid", "beginAt", "status"]
        ]
        for r in report.rows:
            cells = [r.region, r.sid, r.key_hint, r.match, r.protocol, r.channel, r.uid]
            cells += [r.begin_at, r.status]
            rows.append(["-" if c in (None, "") else str(c) for c in cells])
        lines += table(rows, numeric=False)
    matched = len(report.matched)
    lines.append(
        f"live streams matching the keys: {matched}"
        + (" (revoke --disconnect cuts them off)" if matched else "")
    )
    for left in report.left_running:
        lines.append(
            f"not matched, still live: stream {printable(str(left['sid']))} in "
            f"{left['app_id']}/{left['region']} has key {left['key_hint']}'s channel and uid, "
            "but its URL names another key (or this one in a form revoker cannot read); "
            "check it and cut it by hand if it is this key's"
        )
    for failure in report.failures:
        where = f"{failure['app_id']}/{failure['region']}"
        who = f" key {failure['key_hint']}" if failure["key_hint"] else ""
        lines.append(
            f"could not check {where}{who}: {failure['what']} {failure['outcome']} "
            f"HTTP {failure['http_status'] or '-'} {failure['message'] or ''} "
            f"request_id={failure['request_id'] or '-'}"
        )
    if report.halt_reason == HaltReason.AUTH_REJECTED:
        lines.append("credentials rejected (401)")
    return printable_lines("\n".join(lines))
