"""The layers as a user meets them: an offline command loads no network code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from revoker.audit.log import AuditLog
from revoker.audit.signing import generate, load_signer
from revoker.cli import main
from revoker.models import Attempt, Outcome, Task, TaskResult

# Runs `revoker report` in every format, and with --verify, in one fresh interpreter;
# prints the exit codes and which network modules ended up loaded.
REPORT_RUN = """
import json, sys
from revoker.cli import main

log, public = sys.argv[1:3]
runs = [["--format", f] for f in ("text", "json", "markdown", "junit")]
runs.append(["--verify", "--require-chain", "--public-key", public])
codes = [
    main(["report", *args, log], prog_name="revoker", standalone_mode=False)
    for args in runs
]
loaded = [m for m in ("httpx", "aiohttp", "tenacity") if m in sys.modules]
print(json.dumps({"codes": codes, "loaded": loaded}), file=sys.stderr)
"""


def signed_log(tmp_path: Path) -> tuple[Path, Path]:
    """A chained, signed audit log of one revoked pair, and its public key."""
    public = generate(tmp_path / "sign.pem")
    log = tmp_path / "audit.jsonl"
    audit = AuditLog.open(
        log, "run-1", reveal_keys=False, signer=load_signer(tmp_path / "sign.pem")
    )
    audit.run_started("revoke", {"resume": False}, {"tasks": 1})
    task = Task("app1", "na", "leaked-key-0001")
    audit.task("revoke", TaskResult(task, Outcome.REVOKED, [Attempt("req-1", "api", 200)]))
    audit.run_finished(command="revoke", exit_code=0, halt_reason=None)
    audit.close()
    return log, public


def test_report_on_an_audit_log_loads_no_http_client_nor_retry_library(tmp_path: Path) -> None:
    log, public = signed_log(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", REPORT_RUN, str(log), str(public)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stderr.strip().splitlines()[-1])
    assert result["codes"] == [0, 0, 0, 0, 0]  # every report ran, and found the run done
    assert "all 1 tasks done" in done.stdout
    assert result["loaded"] == []


def test_a_command_hands_its_exit_code_to_the_group_instead_of_exiting(tmp_path: Path) -> None:
    killed = tmp_path / "killed.jsonl"  # a run that started and never finished: exit 1
    killed.write_text(
        json.dumps({"event": "run_started", "ts": "2026-01-01T00:00:00Z", "run_id": "r1"}) + "\n"
    )
    report = ["report", str(killed)]
    # Not standalone: click returns the exit code the group set, where a sys.exit in
    # the command would have raised SystemExit instead.
    assert main(report, prog_name="revoker", standalone_mode=False) == 1
    assert main([*report, "--expect-head", "0"], standalone_mode=False) == 2  # a usage error
