"""``report --format html`` of a real run against the emulator: 429s and 5xx, a 401 halt
and its ``--resume``, live streams cut. The page parses, says what the text report says,
and draws the timeline."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from revoker.emulator.process import EmulatorProcess
from revoker.models import REGIONS
from tests.reliability.helpers import make_keys, revoker_env, run_revoker

pytestmark = pytest.mark.integration

APP = "app1"


class Tables(HTMLParser):
    """The page's tables by id (rows of cell texts), SVG marks by class, and its text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, list[list[str]]] = {}
        self.marks: dict[str, int] = {}
        self.tags: list[str] = []
        self.text: list[str] = []
        self._table: str | None = None
        self._cell: list[str] | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        found = dict(attrs)
        for cls in (found.get("class") or "").split():
            self.marks[f"{tag}.{cls}"] = self.marks.get(f"{tag}.{cls}", 0) + 1
        if tag == "table":
            self._table = found.get("id") or f"table-{len(self.tables)}"
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._table and self._cell is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def test_the_page_of_a_real_run_with_faults_a_401_halt_resume_and_cuts(tmp_path: Path) -> None:
    keys = make_keys(12)
    seed = tmp_path / "seed.csv"
    seed.write_text("stream_key,app_id\n" + "".join(f'"{k}",{APP}\n' for k in keys))
    streams = tmp_path / "streams.csv"
    streams.write_text(
        "sid,app_id,region,stream_key,channel,uid,url,protocol\n"
        + "".join(f'S{i},{APP},{r},"{keys[i]}",room{i},{i},,rtmp\n' for i, r in enumerate(REGIONS))
    )
    audit = tmp_path / "audit.jsonl"
    args = ["revoke", str(seed), "--audit-log", str(audit), "--disconnect", "--verify"]
    args += ["--verify-delay", "0.1"]
    with EmulatorProcess(
        "--seed-keys", str(seed), "--live-streams", str(streams),
        "--throttle-rate", "0.15", "--error-rate", "0.05", "--seed", "7",
    ) as emu:  # fmt: skip
        wrong = revoker_env({**emu.client_env(), "AGORA_CUSTOMER_SECRET": "wrong-secret"})
        halted = run_revoker(*args, env=wrong)
        assert halted.returncode == 3, halted.stdout + halted.stderr
        resumed = run_revoker(*args, "--resume", env=revoker_env(emu.client_env()))
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    env = revoker_env()
    text = run_revoker("report", str(audit), env=env)
    as_json = json.loads(run_revoker("report", str(audit), "--format", "json", env=env).stdout)
    result = run_revoker("report", str(audit), "--format", "html", "--verify", env=env)
    assert result.returncode == text.returncode == 0, result.stderr
    page = Tables(result.stdout)
    body = "".join(page.text)
    assert page.tags[0] == "html"
    assert text.stdout.splitlines()[0] == f"revoker report: {as_json['verdict']}"
    assert as_json["verdict"] in body
    assert "chained" in body
    assert "audit head" in body
    for event, counts in as_json["counts"].items():
        rows = page.tables[f"counts-{event}"]
        header, *cells = rows
        for row in cells:
            expected = counts["total"] if row[0] == "total" else counts["per_region"][row[0]]
            assert {o: int(n) for o, n in zip(header[1:], row[1:], strict=True) if int(n)} == (
                expected
            )
    assert page.marks.get("polyline.step") == len(REGIONS)
    assert page.marks.get("path.cut") is not None
    assert page.marks.get("line.halt") == 1
    assert page.marks.get("line.resume") == 1
    assert page.marks.get("rect.verify-pass") == 1
    assert page.marks.get("rect.throttled", 0) + page.marks.get("rect.retry", 0) > 0
    assert len(page.tables["streams"]) - 1 == len(REGIONS)  # header and one row per cut
    assert {row[4] for row in page.tables["streams"][1:]} == {f"S{i}" for i in range(4)}
    assert "interrupted: auth_rejected" in body
    assert not any(key in result.stdout for key in keys)
