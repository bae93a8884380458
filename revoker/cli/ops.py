"""The operations commands: ``show``, ``prune`` and ``report`` (click side only).

Registered on the ``revoker`` group by :mod:`revoker.cli`; errors become exit
codes in ``RevokerGroup`` like every other command.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from revoker.cli import (
    _progress,
    allow_non_ascii_option,
    build_settings,
    client_options,
    client_settings,
    connection_options,
    finish,
    input_options,
)
from revoker.cli.output import emit
from revoker.credentials import load_credentials
from revoker.errors import AuditVerifyError, UsageError
from revoker.models import parse_regions
from revoker.settings import RetrySettings

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


@click.command()
@click.argument("key", metavar="KEY")
@click.option("--app-id", envvar="AGORA_APP_ID", help="App ID of the key.  [AGORA_APP_ID]")
@click.option(
    "--regions",
    envvar="AGORA_REGIONS",
    default="na,eu,ap,cn",
    show_default=True,
    help="Subset of regions, comma-separated.",
)
@connection_options
@allow_non_ascii_option
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def show(key: str, app_id: str | None, regions: str, output: str, **opts: Any) -> None:
    """Query one key in every region: present, channel, uid, created, expires.

    Read-only; writes no audit log. Use '-' as KEY to read it from stdin
    (keeps it out of the process list). Exit 0 if every region answered,
    1 if one did not, 3 if the credentials were rejected.
    """
    from revoker.engine.inputs import check_key
    from revoker.engine.show import render_show, show_key

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
    sys.exit(report.exit_code)


@click.command()
@input_options
@client_options
@click.option("--expired", is_flag=True, help="Delete pairs whose expiry has passed.")
@click.option(
    "--older-than",
    metavar="DURATION",
    help="Delete pairs created more than DURATION ago (90d, 12h, 30min, 2w, 6mo = 180d).",
)
@click.pass_context
def prune(ctx: click.Context, /, expired: bool, older_than: str | None, **opts: Any) -> None:
    """Cron clean-up: GET every key in every region, DELETE only the pairs that match.

    Give exactly one of --expired or --older-than. Agora cannot list keys, so
    KEYS (files, '-' for stdin, --key) is the inventory to check. With
    --dry-run the GETs are still sent (to know what matches) and nothing is
    deleted. --resume skips pairs already deleted or found absent.
    """
    from revoker.durations import parse_duration
    from revoker.engine.prune import PRUNE_RESUME_EVENTS, Pruner, Rule
    from revoker.engine.run import execute, prepare

    if expired == (older_than is not None):
        raise UsageError("give exactly one of --expired or --older-than DURATION")
    rule = Rule(expired=True) if expired else Rule(older_than=parse_duration(older_than or ""))
    settings = build_settings(opts)
    credentials = load_credentials(credentials_file=opts["credentials_file"])
    plan = prepare(settings, sys.stdin, resume_events=PRUNE_RESUME_EVENTS)
    for error in plan.stats.invalid:
        click.echo(f"revoker: skipped invalid row: {error}", err=True)
    pruner = Pruner(rule, dry_run=settings.dry_run)
    report = execute(
        "prune",
        settings,
        plan,
        credentials,
        pruner.passes(plan),
        on_result=_progress(ctx, plan.stats.tasks, "prune"),
    )
    report.dry_run = settings.dry_run
    report.notes += pruner.notes()
    finish(report, opts["output"])


@click.command()
@click.argument(
    "audit_logs",
    nargs=-1,
    required=True,
    type=click.Path(path_type=Path),
    metavar="AUDIT_LOG...",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown", "junit"]),
    default="text",
    show_default=True,
    help="markdown fits $GITHUB_STEP_SUMMARY; junit is JUnit XML for CI test reports.",
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
    help="With --verify (one log): exit 4 unless the log ends at this head.",
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
def report(
    audit_logs: tuple[Path, ...],
    fmt: str,
    verify_chain: bool,
    expect_head: str | None,
    public_key: Path | None,
    require_chain: bool,
) -> None:
    """Merge audit logs (shards, resumed runs): latest outcome per task, counts, problems.

    Exit 1 if any task's latest outcome is failed or not_attempted (or a
    verify still found the key present), 0 otherwise, 2 if a log cannot be
    read. Torn lines are skipped and counted. --verify: exit 4 if a log
    fails verification (FILE:LINE: reason of the first broken link on stderr).
    """
    from revoker.audit.merge import build_report, render_report
    from revoker.redact import printable_lines

    if not verify_chain and (expect_head or public_key or require_chain):
        raise UsageError("--expect-head, --public-key and --require-chain need --verify")
    if expect_head is not None and len(audit_logs) != 1:
        raise UsageError("--expect-head checks one log; give exactly one AUDIT_LOG")
    key = None
    if public_key is not None:
        from revoker.audit.signing import load_public_key

        key = load_public_key(public_key)
    merged = build_report(list(audit_logs))
    if fmt == "junit":
        from revoker.render.junit import render_junit

        emit(render_junit(merged), work_done=False, nl=False)
        sys.exit(merged.exit_code)
    text = render_report(merged, fmt)
    emit(printable_lines(text) if fmt == "text" else text, work_done=False, nl=fmt != "markdown")
    if verify_chain:
        _verify_logs(audit_logs, expect_head, key, require_chain)
    sys.exit(merged.exit_code)


def _verify_logs(
    paths: tuple[Path, ...],
    expect_head: str | None,
    key: Ed25519PublicKey | None,
    require_chain: bool,
) -> None:
    """Print each log's chain status on stderr; AuditVerifyError (exit 4) on a failure."""
    from revoker.audit.chain import verify_log

    errors = []
    for path in paths:
        checked = verify_log(path, key)
        for note in checked.notes:
            click.echo(f"revoker: note: {note}", err=True)
        if checked.error is None and checked.status != "chained" and require_chain:
            checked.error = f"{path}: {checked.status} (lines without prev; --require-chain)"
        if checked.error is None and expect_head and checked.head != expect_head.lower():
            checked.error = (
                f"{path}:{checked.lines}: the log ends at head {checked.head}, expected "
                f"{expect_head} (lines were cut off, added or changed)"
            )
        if checked.error:
            errors.append(checked.error)
            click.echo(f"revoker: verify: {path}: FAILED", err=True)
            continue
        click.echo(
            f"revoker: verify: {path}: {checked.status}, head {checked.head}"
            + (f", {checked.runs_signed} signed runs" if checked.runs_signed else ""),
            err=True,
        )
    if errors:
        raise AuditVerifyError("\n".join(errors))


COMMANDS = (show, prune, report)
