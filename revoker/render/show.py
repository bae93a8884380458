"""``revoker show``: one key's state in every region, as text or JSON."""

from __future__ import annotations

import json

from revoker.models import key_hint, key_id
from revoker.redact import printable_lines
from revoker.render.table import table
from revoker.results import HaltReason, ShowReport


def render_show(report: ShowReport, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report.to_dict(), indent=2)
    rows = [["region", "present", "channel", "uid", "created", "expires"]]
    for v in report.regions:
        present = {True: "yes", False: "no", None: f"? ({v.outcome})"}[v.present]
        rows.append(
            [v.region, present, v.channel or "-", v.uid or "-", v.created or "-", v.expires or "-"]
        )
    lines = [f"key {key_hint(report.key)} ({key_id(report.key)}) in app {report.app_id}"]
    lines += ["  " + line for line in table(rows, numeric=False)]
    for v in report.regions:
        if v.present is None:
            lines.append(
                f"  {v.region}: {v.outcome} HTTP {v.http_status} {v.message or ''} "
                f"request_id={v.request_id} server_request_id={v.server_request_id}"
            )
    if report.halt_reason == HaltReason.AUTH_REJECTED:
        lines.append("credentials rejected (401)")
    return printable_lines("\n".join(lines))
