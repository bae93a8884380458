"""Peak RSS of reading a gitleaks report as revoke's input (nothing is sent).

Writes a report of about SIZE_MB megabytes of findings (one distinct key each,
fields as gitleaks writes them, indented), plans a ``revoke --from gitleaks``
of it the way the CLI does, and prints one JSON line:
``{"report_mb": m, "findings": n, "peak_rss_mb": r, "seconds": s}``.

Usage: scanner_memory.py [SIZE_MB] (default 43)
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from revoker.engine.run import prepare
from revoker.settings import ClientSettings, InputSettings, RunSettings


def write_report(path: Path, size: int) -> int:
    """A gitleaks JSON report of about ``size`` characters; returns its findings."""
    count = written = 0
    with path.open("w", encoding="utf-8") as out:
        out.write("[\n")
        while written < size:
            secret = f"k{count:031d}"
            finding = {
                "Description": "Agora stream key", "StartLine": 3, "EndLine": 3,
                "StartColumn": 1, "EndColumn": 45, "Match": f"stream_key = {secret}",
                "Secret": secret, "File": f"deploy/obs-{count}.ini", "SymlinkFile": "",
                "Commit": "0" * 40, "Entropy": 4.5, "Author": "dev", "Email": "dev@example.com",
                "Date": "2026-01-01T00:00:00Z", "Message": "add config " * 20, "Tags": [],
                "RuleID": "agora-stream-key",
                "Fingerprint": f"{'0' * 40}:deploy/obs-{count}.ini:agora-stream-key:3",
            }  # fmt: skip
            text = ("" if count == 0 else ",\n") + json.dumps(finding, indent=1)
            out.write(text)
            written += len(text)
            count += 1
        out.write("\n]\n")
    return count


def main() -> None:
    size_mb = float(sys.argv[1]) if len(sys.argv) > 1 else 43.0
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "gitleaks.json"
        findings = write_report(report, int(size_mb * 1_000_000))
        report_mb = round(report.stat().st_size / 1e6, 1)
        settings = RunSettings(
            inputs=InputSettings(
                sources=(str(report),), app_id="app1", regions=("na",), scanner="gitleaks"
            ),
            client=ClientSettings(base_url="https://agora.test"),
            audit_log=Path(tmp) / "unused.jsonl",
        )
        # The writer's own buffers are gone; the peak from here is the reader's.
        started = time.monotonic()
        prepare(settings)
        seconds = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"report_mb": report_mb, "findings": findings,
                      "peak_rss_mb": round(peak, 1), "seconds": round(seconds, 1)}))  # fmt: skip


if __name__ == "__main__":
    main()
