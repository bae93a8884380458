"""The GitHub Action's one step: mask the keys, revoke, then summary, annotations, outputs.

Run by action.yml with the action's own virtualenv Python; the inputs arrive
as INPUT_* environment variables (never spliced into a script). Everything
GitHub-specific lives here: revoker itself only writes its audit log and
the JSON and markdown of ``revoker report``.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

# GitHub refuses a step summary over 1 MiB; leave room for the note.
SUMMARY_LIMIT = 1024 * 1024 - 4096
# GitHub shows about 10 error annotations per step: aggregate beyond that.
MAX_ANNOTATIONS = 10


def escape_data(value: str) -> str:
    """A workflow command's message: no newline may end the command early."""
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: str) -> str:
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


def command(name: str, message: str, **properties: str) -> None:
    props = ",".join(f"{k}={escape_property(v)}" for k, v in properties.items())
    print(f"::{name}{' ' + props if props else ''}::{escape_data(message)}", flush=True)


def flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("true", "1", "yes", "on")


def option_values(args: list[str], name: str) -> list[str]:
    """Values of ``--name V`` / ``--name=V`` in an argument list."""
    values = []
    for index, arg in enumerate(args):
        if arg == name and index + 1 < len(args):
            values.append(args[index + 1])
        elif arg.startswith(name + "="):
            values.append(arg.split("=", 1)[1])
    return values


def keys_to_mask(path: str, extra: list[str]) -> set[str]:
    """Every key revoker will read from ``path``, found by revoker's own parser
    (a refused row is never printed with its key, so it needs no mask)."""
    from revoker.engine.input.sources import KeyRow, Source, iter_source

    formats = option_values(extra, "--from")
    scanner = formats[-1] if formats else None
    found: set[str] = set()
    source = Source(path, scanner=scanner, rules=tuple(option_values(extra, "--rule")))
    try:
        # "mask" stands in for a missing app ID: the key is what matters here.
        for row in iter_source(source, "mask"):
            if isinstance(row, KeyRow):
                found.add(row.key)
    except Exception:  # noqa: S110 - a bad report is revoker's to report, with its line
        pass
    finally:
        source.close()
    return found


def revoker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "revoker", "--no-color", "--log-format", "json", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def relay(text: str, token: str) -> None:
    """Print revoker's own output with workflow commands off: a server message
    cannot then pass for a command (set an output, add a path, stop masking)."""
    if not text.strip():
        return
    print(f"::stop-commands::{token}", flush=True)
    print(text.rstrip("\n"), flush=True)
    print(f"::{token}::", flush=True)


def write_summary(markdown: str) -> None:
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return
    data = markdown.encode("utf-8")
    if len(data) > SUMMARY_LIMIT:
        cut = data[:SUMMARY_LIMIT].rsplit(b"\n", 1)[0].decode("utf-8", "ignore")
        markdown = (
            cut + f"\n\n> **Cut here:** the report is {len(data):,} bytes and GitHub's step "
            "summary takes at most 1 MiB. The full report: `revoker report --format markdown` "
            "over the audit log.\n"
        )
    with open(path, "a", encoding="utf-8") as out:
        out.write(markdown)


def page_path(audit_log: Path) -> Path:
    """The html report beside the audit log: revoker-audit.jsonl -> revoker-audit.html."""
    return audit_log.with_name(audit_log.stem + ".html")


def write_page(audit_log: Path) -> Path | None:
    """``revoker report --format html --verify`` beside the audit log, for the artifact."""
    result = revoker("report", str(audit_log), "--format", "html", "--verify")
    if not result.stdout.lstrip().startswith("<!DOCTYPE html>"):
        return None
    path = page_path(audit_log)
    path.write_text(result.stdout, encoding="utf-8")
    return path


def link_summary() -> int:
    """The job summary's link to the uploaded artifact (the page and the audit log)."""
    url = os.environ.get("ARTIFACT_URL", "")
    page = os.environ.get("REPORT_HTML", "")
    # The URL is GitHub's own; anything else is not linked.
    if not url.startswith("https://") or any(c in url for c in " ()[]<>\n\r`"):
        return 0
    name = (Path(page).name if page else "the report page").replace("`", "'")
    write_summary(
        f"\n**Incident report page:** [download the artifact]({url}) and open "
        f"`{name}` (a self-contained page with the timeline; the audit "
        "log is beside it).\n"
    )
    return 0


def annotate(problems: list[dict[str, Any]]) -> None:
    """One ::error per failed (app, region) group, at most MAX_ANNOTATIONS."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for problem in problems:
        groups[(str(problem.get("app_id")), str(problem.get("region")))].append(problem)
    ranked = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    shown = ranked if len(ranked) <= MAX_ANNOTATIONS else ranked[: MAX_ANNOTATIONS - 1]
    for (app, region), items in shown:
        outcomes = Counter(str(p.get("outcome")) for p in items)
        first = items[0]
        ids = ", ".join(str(i) for i in (first.get("request_ids") or [])[-2:]) or "-"
        command(
            "error",
            f"{len(items)} task(s) not done ("
            + ", ".join(f"{o} {n}" for o, n in outcomes.most_common())
            + f"); e.g. {first.get('event')} {first.get('key_hint')}: "
            f"HTTP {first.get('http_status') or '-'} {first.get('message') or ''} "
            f"(request IDs {ids})",
            title=f"revoker: app {app}, region {region}",
        )
    rest = ranked[len(shown) :]
    if rest:
        command(
            "error",
            f"{sum(len(items) for _, items in rest)} more task(s) not done in "
            f"{len(rest)} more (app, region) groups: see the job summary",
            title="revoker: more problems",
        )


def set_outputs(values: dict[str, str]) -> None:
    path = os.environ.get("GITHUB_OUTPUT")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as out:
        for name, value in values.items():
            # GitHub's multiline form, for every output: a newline in a value (an input
            # such as audit-log) cannot start another output line after it.
            delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
            while delimiter in value:  # pragma: no cover - 128 random bits
                delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
            out.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")


# Each output: (the pass, its outcome). One pass per output, never a sum over passes:
# a pair that failed its DELETE and then its verify GET is one failed DELETE.
PASS_OUTPUTS = {
    "revoked": ("revoke", "revoked"),
    "absent": ("revoke", "absent"),
    "failed": ("revoke", "failed"),
    "not-attempted": ("revoke", "not_attempted"),
    "verified-absent": ("verify", "absent"),
    "still-present": ("verify", "present"),
    "verify-failed": ("verify", "failed"),
    "verify-not-attempted": ("verify", "not_attempted"),
    "streams-cut": ("disconnect", "disconnected"),
    "disconnect-failed": ("disconnect", "failed"),
    "disconnect-not-attempted": ("disconnect", "not_attempted"),
}


def pass_outputs(counts: dict[str, Any]) -> dict[str, str]:
    """The per-pass outputs from ``revoker report``'s counts (latest outcome per task over
    every run in the audit log); ``tasks`` is the (key, region) pairs of the revoke pass."""

    def total(event: str) -> dict[str, int]:
        found: dict[str, int] = (counts.get(event) or {}).get("total") or {}
        return found

    values = {
        name: str(total(event).get(outcome, 0)) for name, (event, outcome) in PASS_OUTPUTS.items()
    }
    values["tasks"] = str(sum(total("revoke").values()))
    return values


def main() -> int:
    keys = os.environ.get("INPUT_KEYS", "").strip()
    try:
        extra = shlex.split(os.environ.get("INPUT_EXTRA_ARGS", ""))
    except ValueError as exc:  # an unbalanced quote
        command(
            "error",
            f"the 'extra-args' input is not valid shell quoting ({exc}); quote values "
            "as in a shell, e.g. --rule 'agora key'",
            title="revoker",
        )
        set_outputs({"exit-code": "2"})
        return 2
    audit_log = Path(os.environ.get("INPUT_AUDIT_LOG") or "revoker-audit.jsonl").resolve()
    if not keys:
        command("error", "the 'keys' input (a file of keys) is required", title="revoker")
        return 2
    for key in sorted(keys_to_mask(keys, extra)):
        print(f"::add-mask::{escape_data(key)}", flush=True)
    args = ["revoke", keys, "--audit-log", str(audit_log), "--output", "json"]
    if os.environ.get("INPUT_APP_ID"):
        args += ["--app-id", os.environ["INPUT_APP_ID"]]
    if os.environ.get("INPUT_REGIONS"):
        args += ["--regions", os.environ["INPUT_REGIONS"]]
    args += ["--verify"] if flag("INPUT_VERIFY") else []
    args += ["--disconnect"] if flag("INPUT_DISCONNECT") else []
    token = secrets.token_hex(16)
    result = revoker(*args, *extra)
    relay(result.stderr, token)
    outputs = {"exit-code": str(result.returncode), "audit-log": str(audit_log)}
    if result.stdout.strip():
        # revoke's --output json, as revoker/schemas/output.schema.json describes it.
        summary_json = (
            Path(os.environ.get("RUNNER_TEMP") or audit_log.parent) / "revoker-summary.json"
        )
        summary_json.write_text(result.stdout, encoding="utf-8")
        outputs["summary-json"] = str(summary_json)
    if not audit_log.exists():
        # Refused before sending anything (bad input, credentials): revoker said why above.
        command("error", f"revoker exited {result.returncode}: see the log", title="revoker")
        set_outputs(outputs)
        return result.returncode
    merged = revoker("report", str(audit_log), "--format", "json")
    report = json.loads(merged.stdout) if merged.stdout.strip() else {}
    markdown = revoker("report", str(audit_log), "--format", "markdown").stdout
    write_summary(markdown)
    page = write_page(audit_log)
    if page is not None:
        outputs["report-html"] = str(page)
    problems = report.get("problems") or []
    verdicts = report.get("keys") or {}
    outputs.update(pass_outputs(report.get("counts") or {}))
    outputs.update(
        {
            "problems": str(len(problems)),
            "keys": str(verdicts.get("keys", 0)),
            "keys-revoked": str(verdicts.get("revoked", 0)),
            "keys-not-found": str(verdicts.get("not_found", 0)),
            "not-found": str(verdicts.get("not_found", 0)),
        }
    )
    if verdicts.get("not_found") and not verdicts.get("absent_ok"):
        command(
            "error",
            f"{verdicts['not_found']} of {verdicts.get('keys')} keys were found in no region and "
            "never revoked in this audit log: NOT revoked (a typo, another app ID, a "
            "redacted or truncated scanner finding?)",
            title="revoker: keys not found",
        )
    relay(
        "\n".join(
            f"not done: {p.get('event')} {p.get('region')} {p.get('app_id')} "
            f"{p.get('key_hint')}: {p.get('outcome')} HTTP {p.get('http_status')} "
            f"{p.get('message') or ''}"
            for p in problems[:50]
        ),
        token,
    )
    annotate(problems)
    set_outputs(outputs)
    return result.returncode


if __name__ == "__main__":
    sys.exit(link_summary() if sys.argv[1:] == ["link"] else main())
