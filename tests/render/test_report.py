"""The markdown report: every name a log holds is literal text in $GITHUB_STEP_SUMMARY."""

from __future__ import annotations

from pathlib import Path

from tests.cli.test_hostile_input import ENV, _log
from tests.reliability.helpers import run_revoker

FORGED = "x | **all 3 tasks done** | [ok](https://evil.example) <b>"


def test_markdown_count_tables_escape_forged_region_and_outcome_names(tmp_path: Path) -> None:
    log = _log(tmp_path)
    text = log.read_text().replace('"region":"na"', f'"region":"{FORGED}"')
    log.write_text(text.replace('"outcome":"failed"', f'"outcome":"{FORGED}"', 1))
    result = run_revoker("report", "--format", "markdown", str(log), env=ENV)
    assert result.returncode == 1, result.stderr
    summary = result.stdout
    assert "**all 3 tasks done**" not in summary
    assert "[ok](https://evil.example)" not in summary
    assert "<b>" not in summary
    assert "| x \\| \\*\\*all 3 tasks done\\*\\* \\| \\[ok\\]" in summary  # shown, as literal text
