"""The operations commands: ``show``, ``prune`` and ``report`` (click side only).

Registered on the ``revoker`` group by :mod:`revoker.cli`; errors become exit
codes in ``RevokerGroup`` like every other command.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from revoker.cli import _progress, build_settings, client_options, finish, input_options
from revoker.errors import UsageError
from revoker.settings import (
    ClientSettings,
    RetrySettings,
    check_base_url,
    default_fallback,
    load_credentials,
    parse_regions,
)


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
@click.option(
    "--base-url",
    envvar="AGORA_BASE_URL",
    default="https://api.agora.io",
    show_default=True,
    help="API base URL (http only for loopback).",
)
@click.option("--fallback-url", envvar="AGORA_FALLBACK_BASE_URL", help="Alternate base URL.")
@click.option(
    "--auth",
    type=click.Choice(["basic", "hmac"]),
    envvar="AGORA_AUTH",
    default="basic",
    show_default=True,
    help="How requests are signed.",
)
@click.option(
    "--credentials-file",
    type=click.Path(path_type=Path),
    envvar="REVOKER_CREDENTIALS_FILE",
    help="File with AGORA_CUSTOMER_ID=... and AGORA_CUSTOMER_SECRET=... (mode 0600).",
)
@click.option(
    "--timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True, help="Seconds."
)
@click.option(
    "--max-attempts",
    type=click.IntRange(1, 100),
    default=6,
    show_default=True,
    help="Attempts per region.",
)
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def show(
    key: str,
    app_id: str | None,
    regions: str,
    base_url: str,
    fallback_url: str | None,
    auth: str,
    credentials_file: Path | None,
    timeout: float,
    max_attempts: int,
    output: str,
) -> None:
    """Query one key in every region: present, channel, uid, created, expires.

    Read-only; writes no audit log. Use '-' as KEY to read it from stdin
    (keeps it out of the process list). Exit 0 if every region answered,
    1 if one did not, 3 if the credentials were rejected.
    """
    from revoker.inputs import check_key
    from revoker.show import render_show, show_key

    if key == "-":
        key = sys.stdin.readline().strip()
    reason = check_key(key)
    if reason:
        raise UsageError(f"KEY: {reason}")
    if not app_id:
        raise UsageError("give --app-id (or set AGORA_APP_ID)")
    base = check_base_url(base_url)
    settings = ClientSettings(
        base_url=base,
        fallback_url=check_base_url(fallback_url) if fallback_url else default_fallback(base),
        auth=auth,
        timeout=timeout,
        concurrency=4,
    )
    credentials = load_credentials(credentials_file=credentials_file)
    report = show_key(
        key,
        app_id,
        parse_regions(regions),
        settings,
        credentials,
        retry=RetrySettings(max_attempts=max_attempts),
    )
    click.echo(render_show(report, output))
    sys.exit(report.exit_code)


@click.command()
@input_options
@client_options
@click.option("--expired", is_flag=True, help="Delete pairs whose expiry has passed.")
@click.option(
    "--older-than",
    metavar="DURATION",
    help="Delete pairs created more than DURATION ago (90d, 12h, 30m, 2w).",
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
    from revoker.prune import PRUNE_RESUME_EVENTS, Pruner, Rule
    from revoker.service import execute, prepare

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
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
    help="markdown fits $GITHUB_STEP_SUMMARY.",
)
def report(audit_logs: tuple[Path, ...], fmt: str) -> None:
    """Merge audit logs (shards, resumed runs): latest outcome per task, counts, problems.

    Exit 1 if any task's latest outcome is failed or not_attempted (or a
    verify still found the key present), 0 otherwise, 2 if a log cannot be
    read. Torn lines are skipped and counted.
    """
    from revoker.report import build_report, render_report

    merged = build_report(list(audit_logs))
    click.echo(render_report(merged, fmt), nl=fmt != "markdown")
    sys.exit(merged.exit_code)


COMMANDS = (show, prune, report)
