"""The commands besides the bulk runs (click side only): ``show`` and ``streams``
(read-only queries), ``report`` (audit logs) and ``keygen``.

None of them writes an audit log, except ``report --merge-fallback`` (the lines a
full disk kept out of one, appended as its run would have). Each returns its exit
code; errors become exit codes in :mod:`revoker.cli` like every other command's.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from revoker.cli.helptext import HelpCommand
from revoker.cli.options import (
    RATE_TYPE,
    allow_non_ascii_option,
    client_settings,
    connection_options,
    input_options,
    input_settings,
    output_option,
)
from revoker.cli.output import emit, skipped_rows
from revoker.credentials import load_credentials
from revoker.errors import EXIT_OK, AuditVerifyError, UsageError
from revoker.models import parse_regions
from revoker.settings import RetrySettings, RunSettings

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from revoker.audit.chain import ChainReport


@click.command(
    cls=HelpCommand,
    examples=[
        ('revoker show - --app-id "$APP" < key.txt', "one key in every region (kept out of ps)"),
        ("revoker show - --regions na,eu --output json < key.txt", "two regions, JSON"),
    ],
)
@click.argument("key", metavar="KEY")
@click.option("--app-id", envvar="AGORA_APP_ID", show_envvar=True, help="App ID of the key.")
@click.option(
    "--regions",
    envvar="AGORA_REGIONS",
    show_envvar=True,
    default="na,eu,ap,cn",
    show_default=True,
    help="Subset of regions, comma-separated.",
)
@connection_options
@allow_non_ascii_option
@output_option()
def show(key: str, app_id: str | None, regions: str, output: str, **opts: Any) -> int:
    """Query one key in every region: present, channel, uid, created, expires.

    Read-only; writes no audit log. Use '-' as KEY to read it from stdin
    (keeps it out of the process list). Exit 0 if every region answered,
    1 if one did not, 3 if the credentials were rejected.
    """
    from revoker.engine.input.sources import check_key
    from revoker.engine.jobs.show import show_key
    from revoker.render.show import render_show

    if key == "-":
        key = sys.stdin.readline().strip()
    reason = check_key(key, allow_non_ascii=opts["allow_non_ascii_keys"])
    if reason:
        raise UsageError(f"KEY: {reason}")
    if not app_id:
        raise UsageError("give --app-id (or set AGORA_APP_ID)")
    settings = client_settings(opts, concurrency=4)
    credentials = load_credentials(credentials_file=opts["credentials_file"])
    report = show_key(
        key,
        app_id,
        parse_regions(regions),
        settings,
        credentials,
        retry=RetrySettings(max_attempts=opts["max_attempts"]),
    )
    emit(render_show(report, output), work_done=True)
    return report.exit_code


@click.command(
    cls=HelpCommand,
    examples=[
        ("revoker streams leaked.csv", "live streams pushed with these keys, per region"),
        ("revoker streams leaked.csv --all --output json", "every live stream of their apps"),
    ],
)
@input_options
@connection_options
@click.option(
    "--concurrency",
    type=click.IntRange(1, 1024),
    default=8,
    show_default=True,
    help="Requests in flight.",
)
@click.option(
    "--max-rps",
    type=RATE_TYPE,
    default=None,
    help="GET requests/s per app ID (default: Agora's 100; 0 = no cap).",
)
@click.option(
    "--all", "show_all", is_flag=True, help="Every live stream of the app, matched or not."
)
@output_option()
def streams(show_all: bool, output: str, **opts: Any) -> int:
    """Live streams pushed with KEYS, per region (read-only; nothing is deleted).

    Lists the live streams of each app ID once per region and GETs each key
    (its channel and uid tie WHIP streams to it). Exit 1 if a matching stream
    is live or a region could not be checked, 0 if none, 3 if the
    credentials were rejected.
    """
    from revoker.engine.jobs.streams import check_streams
    from revoker.engine.run import prepare
    from revoker.render.streams import render_streams

    # Shards share the app's GET budget as the bulk commands do (RunSettings.rps_for).
    settings = RunSettings(inputs=input_settings(opts), max_rps=opts["max_rps"])
    credentials = load_credentials(credentials_file=opts["credentials_file"])
    plan = prepare(settings, sys.stdin, keep_keys=False)  # check_streams keeps its own
    skipped_rows(plan.stats.invalid)
    try:
        report = check_streams(
            plan.tasks(),
            client_settings(opts, opts["concurrency"]),
            credentials,
            retry=RetrySettings(max_attempts=opts["max_attempts"]),
            get_rps=settings.rps_for("GET"),
            show_all=show_all,
        )
    finally:
        plan.close()
    emit(render_streams(report, output), work_done=True)
    return report.exit_code


@click.command(
    cls=HelpCommand,
    examples=[
        ("revoker report revoker-audit.jsonl", "latest outcome per task and every failure"),
        ("revoker report --verify a0.jsonl a1.jsonl a2.jsonl", "shard logs, hash chains checked"),
        (
            'revoker report revoke.jsonl --format markdown >> "$GITHUB_STEP_SUMMARY"',
            "a CI job's summary",
        ),
    ],
)
@click.argument(
    "audit_logs",
    nargs=-1,
    required=True,
    type=click.Path(path_type=Path),
    metavar="AUDIT_LOG...",
)
@click.option(
    "--format",
    "--output",
    "fmt",
    type=click.Choice(["text", "json", "markdown", "junit", "html"]),
    default="text",
    show_default=True,
    help="markdown fits $GITHUB_STEP_SUMMARY; junit is JUnit XML for CI test reports; "
    "html is one self-contained page with a timeline (> incident.html).",
)
@click.option(
    "--verify",
    "verify_chain",
    is_flag=True,
    help="Also recompute each log's hash chain: exit 4 on an edited, inserted, "
    "deleted or reordered line.",
)
@click.option(
    "--expect-head",
    metavar="HEX",
    help="With --verify (one log): exit 4 unless the log ends at this head (64 hex "
    "digits; empty or malformed: exit 2).",
)
@click.option(
    "--public-key",
    type=click.Path(path_type=Path),
    help="With --verify: exit 4 unless every run is signed by this key (PEM, from keygen).",
)
@click.option(
    "--require-chain",
    is_flag=True,
    help="With --verify: exit 4 for logs written before chaining (no prev).",
)
@click.option(
    "--merge-fallback",
    "fallback",
    type=click.Path(path_type=Path),
    metavar="FILE",
    help="First append the lines a full disk kept out of AUDIT_LOG (the file the run "
    "named), chained and signed as the run would have; a file already merged is refused.",
)
@click.option(
    "--sign-key",
    type=click.Path(path_type=Path),
    envvar="REVOKER_SIGN_KEY",
    show_envvar=True,
    help="With --merge-fallback: the run's signing key (PEM, 0600), to sign the merge.",
)
def report(
    audit_logs: tuple[Path, ...],
    fmt: str,
    verify_chain: bool,
    expect_head: str | None,
    public_key: Path | None,
    require_chain: bool,
    fallback: Path | None,
    sign_key: Path | None,
) -> int:
    """Merge audit logs (shards, resumed runs): latest outcome per task, counts, problems.

    Exit 1 if any task's latest outcome is failed or not_attempted (or a
    verify still found the key present), 0 otherwise, 2 if a log cannot be
    read. Torn lines are skipped and counted. --verify: exit 4 if a log
    fails verification (FILE:LINE: reason of the first broken link on stderr).
    """
    from revoker.audit.merge import build_report
    from revoker.redact import printable_lines
    from revoker.render.report import render_report

    if not verify_chain and (expect_head is not None or public_key or require_chain):
        raise UsageError("--expect-head, --public-key and --require-chain need --verify")
    if expect_head is not None and len(audit_logs) != 1:
        raise UsageError("--expect-head checks one log; give exactly one AUDIT_LOG")
    if expect_head is not None:
        expect_head = _check_head(expect_head)
    key = None
    if public_key is not None:
        from revoker.audit.signing import load_public_key

        key = load_public_key(public_key)
    if fallback is not None:
        _merge_fallback(fallback, audit_logs, sign_key)
    if fmt == "html":
        return _report_html(audit_logs, verify_chain, expect_head, key, require_chain)
    merged = build_report(list(audit_logs), verify=verify_chain, public_key=key)
    if fmt == "junit":
        from revoker.render.junit import junit_chunks

        for chunk in junit_chunks(merged):
            emit(chunk, work_done=False, nl=False)
    else:
        text = render_report(merged, fmt)
        nl = fmt != "markdown"
        emit(printable_lines(text) if fmt == "text" else text, work_done=False, nl=nl)
    if verify_chain:
        _verify_logs(merged.chains, expect_head, require_chain)
    return merged.exit_code


def _report_html(
    paths: tuple[Path, ...],
    verify_chain: bool,
    expect_head: str | None,
    key: Ed25519PublicKey | None,
    require_chain: bool,
) -> int:
    """The page, with the tamper check's result on it: verified first, printed, then exit 4
    if the check failed."""
    from revoker.audit.merge import build_report
    from revoker.audit.timeline import Timeline
    from revoker.render.html import ChainStatus, render_html

    timeline = Timeline()
    merged = build_report(list(paths), timeline, verify=verify_chain, public_key=key)
    chain, errors = None, []
    if verify_chain:
        checked = _check_logs(merged.chains, expect_head, require_chain)
        errors = [c.error for c in checked if c.error]
        chain = [
            ChainStatus(
                c.path,
                ok=c.error is None,
                status=c.status,
                head=c.head,
                detail=c.error or (f", {c.runs_signed} signed runs" if c.runs_signed else ""),
                note=UNANCHORED if c.error is None and expect_head is None else "",
            )
            for c in checked
        ]
    # report needs no credentials; if the environment has some, they are blanked too.
    secrets: tuple[str, ...] = ()
    if os.environ.get("AGORA_CUSTOMER_SECRET"):
        from revoker.credentials import Credentials

        found = Credentials(
            os.environ.get("AGORA_CUSTOMER_ID", ""), os.environ["AGORA_CUSTOMER_SECRET"]
        )
        secrets = found.secrets
    emit(render_html(merged, timeline, chain, secrets), work_done=False, nl=False)
    if errors:
        raise AuditVerifyError("\n".join(errors))
    return merged.exit_code


def _merge_fallback(fallback: Path, audit_logs: tuple[Path, ...], sign_key: Path | None) -> None:
    """--merge-fallback: append the saved lines to the one log given, then say so."""
    from revoker.audit.fallback import merge_fallback

    if len(audit_logs) != 1:
        raise UsageError("--merge-fallback adds to one log; give exactly one AUDIT_LOG")
    signer = None
    if sign_key is not None:
        from revoker.audit.signing import load_signer

        signer = load_signer(sign_key)
    done = merge_fallback(fallback, audit_logs[0], signer=signer)
    click.echo(
        f"revoker: merged {done.lines} lines of {fallback} into {audit_logs[0]} "
        f"(run {done.run_id}{', signed' if signer else ''}); audit head {done.head}",
        err=True,
    )


def _check_head(value: str) -> str:
    """--expect-head, checked: a whole head (an unset "$HEAD" must not turn the check off)."""
    if not value:
        raise UsageError(
            "--expect-head is empty (an unset variable?): give the head the run printed "
            "(audit head ..., 64 hex digits)"
        )
    if not _HEAD.fullmatch(value):
        raise UsageError(
            f"--expect-head must be a whole head: 64 hex digits (got {len(value)} characters); "
            "a shortened head is not accepted"
        )
    return value.lower()


_HEAD = re.compile(r"[0-9a-fA-F]{64}")
UNANCHORED = (
    "nothing anchors the end of this log: lines or whole runs cut off its end would not "
    "show (a signature covers only the runs still there); give --expect-head with the "
    "head the run printed, kept off this machine (a CI job log, a ticket)"
)


def _verify_logs(chains: list[ChainReport], expect_head: str | None, require_chain: bool) -> None:
    """Print each log's chain status on stderr; AuditVerifyError (exit 4) on a failure."""
    errors = [c.error for c in _check_logs(chains, expect_head, require_chain) if c.error]
    if errors:
        raise AuditVerifyError("\n".join(errors))


def _check_logs(
    chains: list[ChainReport], expect_head: str | None, require_chain: bool
) -> list[ChainReport]:
    """Each log's chain (followed while the report read it), its status on stderr; the
    reports, errors set where one failed."""
    reports = []
    for checked in chains:
        path = checked.path
        for note in checked.notes:
            click.echo(f"revoker: note: {note}", err=True)
        if checked.error is None and checked.status != "chained" and require_chain:
            checked.error = f"{path}: {checked.status} (lines without prev; --require-chain)"
        if checked.error is None and expect_head is not None and checked.head != expect_head:
            checked.error = (
                f"{path}:{checked.lines}: the log ends at head {checked.head}, expected "
                f"{expect_head} (lines were cut off, added or changed)"
            )
        reports.append(checked)
        if checked.error:
            click.echo(f"revoker: verify: {path}: FAILED", err=True)
            continue
        click.echo(
            f"revoker: verify: {path}: {checked.status}, head {checked.head}"
            + (f", {checked.runs_signed} signed runs" if checked.runs_signed else ""),
            err=True,
        )
        if expect_head is None:
            click.echo(f"revoker: verify: {path}: {UNANCHORED}", err=True)
    return reports


@click.command(
    cls=HelpCommand,
    examples=[
        (
            "revoker keygen audit-signing.pem",
            "then: revoker revoke ... --sign-key audit-signing.pem",
        ),
    ],
)
@click.argument("path", type=click.Path(path_type=Path))
def keygen(path: Path) -> int:
    """Write an Ed25519 key pair for --sign-key: PATH (private, 0600) and PATH.pub.

    Keep PATH secret (a CI secret); commit PATH.pub so anyone can run
    revoker report --verify --public-key PATH.pub later.
    """
    from revoker.audit.signing import generate

    public = generate(path)
    emit(f"private key: {path} (mode 0600)\npublic key:  {public}", work_done=True)
    return EXIT_OK


COMMANDS = (show, streams, report, keygen)
