"""Scanner reports as key input: gitleaks JSON and TruffleHog JSON lines (``--from``)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import respx
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from revoker.cli import main
from revoker.engine.input import scanners
from revoker.engine.input.scanners import iter_findings
from revoker.engine.input.sources import Source, iter_source
from revoker.errors import InputError
from tests.conftest import APP, BASE, api_not_found

AGORA_RULE = "agora-stream-key"


def gitleaks_finding(secret: str, rule: str = AGORA_RULE, **extra: Any) -> dict[str, Any]:
    """A finding as gitleaks 8 writes it in a JSON report (report/finding.go's fields)."""
    match = f"rtmp://push.example.com/live/{secret}"
    return {
        "RuleID": rule,
        "Description": "Agora Media Gateway streaming key (push URL or stream key setting)",
        "StartLine": 3,
        "EndLine": 3,
        "StartColumn": 12,
        "EndColumn": 12 + len(match),
        "Match": match,
        "Secret": secret,
        "File": "deploy/obs.ini",
        "SymlinkFile": "",
        "Commit": "0" * 40,
        "Entropy": 4.3,
        "Author": "Dev One",
        "Email": "dev@example.com",
        "Date": "2026-11-20T10:00:00Z",
        "Message": "add obs profile",
        "Tags": [],
        "Fingerprint": f"{'0' * 40}:deploy/obs.ini:{rule}:3",
        **extra,
    }


def trufflehog_line(raw: str, detector: str = AGORA_RULE, *, builtin: str | None = None) -> str:
    """A line of ``trufflehog --json`` (pkg/output/json.go): a custom detector's finding
    (``DetectorName`` is ``CustomRegex``, its own name in ``ExtraData.name``), or with
    ``builtin`` one of TruffleHog's own detectors (e.g. ``AWS``)."""
    return json.dumps(
        {
            "SourceMetadata": {"Data": {"Filesystem": {"file": "deploy/obs.ini", "line": 3}}},
            "SourceID": 1,
            "SourceType": 15,
            "SourceName": "trufflehog - filesystem",
            "DetectorType": 2 if builtin else 904,
            "DetectorName": builtin or "CustomRegex",
            "DetectorDescription": "This is a user-defined detector with no description provided.",
            "DecoderName": "PLAIN",
            "Verified": False,
            "VerificationFromCache": False,
            "Raw": raw,
            "RawV2": "",
            "Redacted": "",
            "ExtraData": None if builtin else {"name": detector},
            "StructuredData": None,
        },
        separators=(",", ":"),
    )


def findings(text: str, fmt: str, rules: tuple[str, ...] = ()) -> list[tuple[int, str]]:
    return list(iter_findings("r.json", io.StringIO(text), fmt, rules))


def test_gitleaks_report_yields_each_secret_with_its_finding_index() -> None:
    report = json.dumps([gitleaks_finding("key-one-00000001"), gitleaks_finding("key-two-002")])
    assert findings(report, "gitleaks") == [(1, "key-one-00000001"), (2, "key-two-002")]


def test_rule_filter_keeps_only_that_rules_findings_ignoring_case() -> None:
    report = json.dumps(
        [gitleaks_finding("aws-secret-1", rule="aws-access-token"), gitleaks_finding("agora-1")]
    )
    assert findings(report, "gitleaks", ("AGORA-stream-key",)) == [(2, "agora-1")]


def test_trufflehog_json_lines_yield_raw_secret_with_line_number() -> None:
    text = trufflehog_line("tk-0001") + "\n\n" + trufflehog_line("aws", builtin="AWS") + "\n"
    assert findings(text, "trufflehog") == [(1, "tk-0001"), (3, "aws")]
    assert findings(text, "trufflehog", ("aws",)) == [(3, "aws")]


def test_trufflehog_rule_matches_a_custom_detectors_own_name_in_extra_data() -> None:
    text = "\n".join(
        [
            trufflehog_line("tk-0001"),
            trufflehog_line("other-0002", "internal-token"),
            trufflehog_line("aws-0003", builtin="AWS"),
        ]
    )
    assert findings(text, "trufflehog", ("Agora-Stream-Key",)) == [(1, "tk-0001")]
    # DetectorName still works: every custom detector is CustomRegex.
    assert findings(text, "trufflehog", ("customregex",)) == [(1, "tk-0001"), (2, "other-0002")]


@pytest.mark.parametrize(
    "secret", ["REDACTED", "oltr0Q_3jC2Z8EM7KgFaCY2FI9f...", "oltr0Q_3jC2Z8EM7Kg..."]
)
def test_a_gitleaks_report_written_with_redact_is_refused_as_a_whole(secret: str) -> None:
    # gitleaks --redact writes REDACTED; --redact=20 keeps 80% of the secret and adds "...".
    finding = gitleaks_finding(secret, rule="aws-access-token")
    finding["Match"] = f"aws_secret_access_key = {secret}"
    report = json.dumps([gitleaks_finding("oltr0Q_3jC2Z8EM7KgFaCY2FI9flNPho"), finding])
    with pytest.raises(InputError) as info:
        findings(report, "gitleaks", (AGORA_RULE,))
    assert str(info.value).startswith(
        "r.json:2: this report was written with --redact: the secrets are not in it"
    )


@pytest.mark.parametrize(
    ("text", "fmt", "where"),
    [
        ("{not json", "gitleaks", "r.json:1: not a gitleaks JSON report"),
        ('{"Secret": "x"}', "gitleaks", "expected a list of findings"),
        ('[{"Secret": "x"}]', "gitleaks", "r.json:1: not a gitleaks finding"),
        ("[1]", "gitleaks", "r.json:1: not a gitleaks finding"),
        ("[]\n", "trufflehog", "r.json:1: not a TruffleHog finding"),
        ("stream_key\nabc\n", "trufflehog", "r.json:1: not TruffleHog JSON lines"),
        (trufflehog_line("a") + "\n{}\n", "trufflehog", "r.json:2: not a trufflehog finding"),
    ],
)
def test_a_report_of_another_format_is_refused_naming_file_and_position(
    text: str, fmt: str, where: str
) -> None:
    with pytest.raises(InputError) as info:
        findings(text, fmt)
    assert where in str(info.value)


def test_a_bad_secret_is_an_invalid_row_at_its_finding(tmp_path: Path) -> None:
    path = tmp_path / "gl.json"
    path.write_text(json.dumps([gitleaks_finding("good-key-001"), gitleaks_finding("a b")]))
    rows = list(iter_source(Source(str(path), scanner="gitleaks"), APP))
    assert [getattr(r, "key", None) for r in rows] == ["good-key-001", None]
    assert str(rows[1]).startswith(f"{path}:2: stream key contains whitespace")


def invoke(tmp_path: Path, *args: str) -> Any:
    return CliRunner().invoke(
        main,
        ["revoke", "--base-url", BASE, "--audit-log", str(tmp_path / "a.jsonl"), *args],
        catch_exceptions=False,
    )


@pytest.mark.usefixtures("creds")
def test_a_malformed_report_exits_2_naming_the_file_and_sends_nothing(
    tmp_path: Path, api: respx.MockRouter
) -> None:
    route = api.route().mock(side_effect=AssertionError("nothing may be sent"))
    report = tmp_path / "findings.jsonl"
    report.write_text("this is not json\n")
    for extra in ((), ("--skip-invalid",)):
        result = invoke(
            tmp_path, "--from", "trufflehog", "--all-findings", "--app-id", APP, str(report), *extra
        )
        assert result.exit_code == 2
        assert f"{report}:1: not TruffleHog JSON lines" in result.stderr
    assert route.call_count == 0
    assert not (tmp_path / "a.jsonl").exists()


@pytest.mark.usefixtures("creds")
def test_rule_without_from_is_a_usage_error(tmp_path: Path, api: respx.MockRouter) -> None:
    route = api.route().mock(side_effect=AssertionError("nothing may be sent"))
    result = invoke(tmp_path, "--rule", "x", "--key", "k-1234567", "--app-id", APP)
    assert result.exit_code == 2
    assert "--rule selects scanner findings" in result.stderr
    assert route.call_count == 0


@pytest.mark.usefixtures("creds")
def test_verify_and_prune_read_scanner_reports_too(tmp_path: Path, api: respx.MockRouter) -> None:
    route = api.get(url__regex=r"/streamkeys/").mock(side_effect=api_not_found)
    report = tmp_path / "th.jsonl"
    report.write_text(
        trufflehog_line("tk-00000001") + "\n" + trufflehog_line("aws", builtin="AWS") + "\n"
    )
    common = ["--base-url", BASE, "--from", "trufflehog", "--rule", AGORA_RULE]
    result = CliRunner().invoke(
        main,
        ["verify", *common, "--audit-log", str(tmp_path / "v.jsonl"), "--app-id", APP, str(report)],
    )
    assert result.exit_code == 0, result.output
    assert route.call_count == 4
    assert {r.request.url.path.rsplit("/", 1)[1] for r in route.calls} == {"tk-00000001"}
    result = CliRunner().invoke(
        main,
        ["prune", *common, "--expired", "--audit-log", str(tmp_path / "p.jsonl"), "--app-id", APP,
         str(report)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert route.call_count == 8


@pytest.mark.usefixtures("creds")
def test_a_rule_that_matches_nothing_names_the_rules_the_report_holds(
    tmp_path: Path, api: respx.MockRouter
) -> None:
    route = api.route().mock(side_effect=AssertionError("nothing may be sent"))
    report = tmp_path / "th.jsonl"
    report.write_text(trufflehog_line("tk-00000001", "obs-stream-key") + "\n")
    result = invoke(tmp_path, "--from", "trufflehog", "--rule", AGORA_RULE, str(report))
    assert result.exit_code == 2
    assert (
        f"no finding of --rule {AGORA_RULE} in the report: its findings are of "
        "'obs-stream-key' (CustomRegex)" in result.stderr
    )
    assert route.call_count == 0


@pytest.mark.usefixtures("creds")
def test_from_without_rule_exits_2_unless_all_findings(
    tmp_path: Path, api: respx.MockRouter
) -> None:
    route = api.delete(url__regex=r"/streamkeys/").mock(side_effect=api_not_found)
    report = tmp_path / "gl.json"
    report.write_text(json.dumps([gitleaks_finding("key-one-00000001")]))
    result = invoke(tmp_path, "--from", "gitleaks", "--app-id", APP, str(report))
    assert result.exit_code == 2
    assert "--from without --rule would send every finding of the report" in result.stderr
    assert route.call_count == 0
    result = invoke(tmp_path, "--from", "gitleaks", "--all-findings", "--app-id", APP, str(report))
    assert route.call_count == 4, result.output
    result = invoke(tmp_path, "--all-findings", "--key", "key-one-00000001", "--app-id", APP)
    assert result.exit_code == 2
    assert "--all-findings selects scanner findings" in result.stderr


class _LazyReport(io.TextIOBase):
    """A gitleaks report of ``count`` findings made as it is read: the test holds
    none of it, so what a parse keeps in memory is the parser's own."""

    def __init__(self, count: int) -> None:
        self._parts = self._generate(count)
        self._pending = ""

    @staticmethod
    def _generate(count: int) -> Any:
        yield "[\n"
        for i in range(count):
            finding = json.dumps(gitleaks_finding(f"key-{i:012d}", Match="x" * 600), indent=2)
            yield ("" if i == 0 else ",\n") + finding
        yield "\n]\n"

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> str:
        want = size if size is not None and size >= 0 else 1 << 62
        while len(self._pending) < want:
            part = next(self._parts, None)
            if part is None:
                break
            self._pending += part
        text, self._pending = self._pending[:want], self._pending[want:]
        return text


def test_a_large_gitleaks_report_is_streamed_with_memory_bounded() -> None:
    import tracemalloc

    count = 10_000  # 8.7 MB of report
    tracemalloc.start()
    try:
        seen = sum(1 for _ in iter_findings("big.json", _LazyReport(count), "gitleaks"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == count
    assert peak < 2_000_000  # a few chunks and findings, not the report


REPORTS = st.lists(
    st.builds(
        gitleaks_finding,
        st.text(min_size=1, max_size=40),
        rule=st.sampled_from([AGORA_RULE, "other"]),
        Match=st.text(max_size=300),
    ),
    max_size=8,
)


@given(report=REPORTS, indent=st.sampled_from([None, 0, 2]), chunk=st.integers(1, 64))
def test_the_streamed_report_reads_exactly_as_json_load_at_any_chunk_size(
    report: list[dict[str, Any]], indent: int | None, chunk: int
) -> None:
    text = json.dumps(report, indent=indent, ensure_ascii=False)
    with mock.patch.object(scanners, "CHUNK", chunk, create=True):
        got = findings(text, "gitleaks")
    assert got == [(i, f["Secret"]) for i, f in enumerate(report, start=1)]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "  \n",
        '[{"Secret": "a", "RuleID": "r"},\n {"Secret": "b", "RuleID": "r"}\n',
        '[{"Secret": "a", "RuleID": "r"}\n\n {"Secret": "b"}]',
        '[{"Secret": "a", "RuleID": "r"}] trailing',
        '[{"Secret": "a", "RuleID": "r"},\n\n{"Secret": "unterminated',
        '[{"Secret": "a", "RuleID": "r"},\n]',
        "[" * 100_000,
        '{"Secret": "a"}',
    ],
    ids=["empty", "blank", "truncated", "no-comma", "extra", "open-string", "trailing-comma",
         "deep", "an-object"],
)  # fmt: skip
@pytest.mark.parametrize("chunk", [3, 1 << 16])
def test_a_malformed_report_is_refused_at_the_line_json_load_names(text: str, chunk: int) -> None:
    try:
        expected = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"r.json:{exc.lineno}: not a gitleaks JSON report"
    except RecursionError:
        where = "r.json:1: not a gitleaks JSON report (nested too deeply)"
    else:
        assert not isinstance(expected, list)
        where = "r.json:1: not a gitleaks JSON report (expected a list of findings)"
    small_chunks = mock.patch.object(scanners, "CHUNK", chunk, create=True)
    with small_chunks, pytest.raises(InputError) as info:
        findings(text, "gitleaks")
    assert where in str(info.value)
