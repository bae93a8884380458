"""The bulk commands: ``revoke``, ``verify``, ``prune`` and ``rotate`` (click side only).

Each reads its inputs into a plan and runs passes over it with
:func:`revoker.engine.run.run_command`, writing the audit log; here only the
options, the progress line and the summary. Each returns its exit code.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from revoker.cli.helptext import HelpCommand
from revoker.cli.options import (
    MAX_WAIT,
    absent_ok_option,
    build_settings,
    check_verify_delay,
    client_options,
    client_options_with,
    disconnect_timeout_option,
    input_options,
)
from revoker.cli.output import emit, error, progress_display, skipped_rows
from revoker.credentials import load_credentials
from revoker.durations import MAX_DURATION
from revoker.errors import EXIT_OK, UsageError
from revoker.settings import RunSettings, check_new_keys_path

if TYPE_CHECKING:
    from revoker.engine.input.planner import Plan
    from revoker.engine.interface import Pass
    from revoker.results import RunReport


def _run(
    ctx: click.Context,
    command: str,
    settings: RunSettings,
    opts: dict[str, Any],
    passes_for: Callable[[RunSettings, Plan], list[Pass]],
    *,
    resume_events: tuple[str, ...] = (),
    sends_in_dry_run: bool = False,
) -> RunReport:
    """Run ``command``; a dry run sends nothing unless ``sends_in_dry_run`` (prune's GETs)."""
    from revoker.engine.run import run_command

    plan_only = settings.dry_run and not sends_in_dry_run
    credentials = None if plan_only else load_credentials(credentials_file=opts["credentials_file"])
    with progress_display(ctx) as display:
        return run_command(
            command,
            settings,
            credentials,
            sys.stdin,
            passes_for=passes_for,
            resume_events=resume_events,
            on_plan=lambda stats: skipped_rows(stats.invalid),
            observer=display,
        )


def finish(ctx: click.Context, report: RunReport, output: str) -> int:
    """Print the summary (and any unrecorded tasks); the report's exit code. A run that
    did not end well also says so on stderr, even with -q."""
    from revoker.render.summary import render, verdict

    if report.unrecorded:
        saved = report.unrecorded_file
        where = (
            f"their audit lines are saved in {saved}; once there is room, add them to the "
            f"log with: revoker report --merge-fallback {saved} {report.audit_log} "
            "(and the run's --sign-key if it signed; appended by hand they break the chain)"
            if saved
            else "saving them to a file failed too; they are listed in the summary"
        )
        error(
            ctx,
            f"{len(report.unrecorded)} completed tasks could not be "
            f"written to the audit log: {where}",
        )
    # A dry run of prune still sends its GETs and writes the audit log.
    argv = ctx.meta.get("revoker.argv")
    emit(render(report, output, argv), work_done=report.audit_log is not None)
    if report.exit_code != EXIT_OK:
        where = (
            f"; revoker report {report.audit_log} lists every failure" if report.audit_log else ""
        )
        error(
            ctx,
            f"{report.command}: {verdict(report)} (exit code {report.exit_code}){where}",
            exit_code=report.exit_code,
        )
    return report.exit_code


@click.command(
    cls=HelpCommand,
    examples=[
        (
            "revoker revoke leaked.csv --verify --disconnect",
            "an incident: delete everywhere, confirm each pair is gone, cut live streams",
        ),
        ('revoker revoke - --app-id "$APP" < leaked.txt', "keys on stdin"),
        ("revoker revoke leaked.csv --dry-run", "the plan and how long it takes; nothing sent"),
        ("revoker revoke leaked.csv --resume", "finish an interrupted run (same audit log)"),
    ],
)
@input_options
@client_options
@click.option(
    "--verify",
    is_flag=True,
    help="GET every pair to confirm it is gone, each --verify-delay after its DELETE.",
)
@click.option(
    "--verify-delay",
    type=float,
    default=None,
    metavar="SECONDS",
    help="With --verify: wait this long after a pair's DELETE before its GET "
    f"(replication), 0 to {MAX_WAIT:g}.  [default: 2]",
)
@click.option(
    "--disconnect", is_flag=True, help="Also force-disconnect live streams pushed with the key."
)
@disconnect_timeout_option
@absent_ok_option
@click.pass_context
def revoke(
    ctx: click.Context,
    /,
    verify: bool,
    verify_delay: float | None,
    disconnect: bool,
    disconnect_timeout: float,
    absent_ok: bool,
    **opts: Any,
) -> int:
    """Delete every key in every region (one DELETE per key and region).

    KEYS are CSV files (header stream_key[,app_id,regions]) or text files
    (one key per line, # comments); '-' reads stdin.
    """
    from revoker.engine.run import revoke_passes

    settings = build_settings(
        opts,
        verify=verify,
        verify_delay=check_verify_delay(verify, verify_delay),
        disconnect=disconnect,
        disconnect_timeout=disconnect_timeout,
        absent_ok=absent_ok,
    )
    report = _run(ctx, "revoke", settings, opts, revoke_passes, resume_events=("revoke",))
    return finish(ctx, report, opts["output"])


@click.command(
    cls=HelpCommand,
    examples=[
        ("revoker verify leaked.csv", "exit 0 only if every key is gone from every region"),
        ("revoker verify leaked.csv --output json > verify.json", "CI: a JSON summary"),
        ("revoker verify leaked.csv --regions cn", "one region only"),
    ],
)
@input_options
@client_options_with(
    resume_help="Accepted, skips nothing: every pair is checked again (a verify is "
    "always worth repeating)."
)
@click.pass_context
def verify(ctx: click.Context, /, **opts: Any) -> int:
    """GET every key in every region: exit 0 only if every pair is absent."""
    from revoker.engine.run import verify_pass

    settings = build_settings(opts)
    report = _run(
        ctx,
        "verify",
        settings,
        opts,
        lambda s, plan: [verify_pass(plan)],
    )
    return finish(ctx, report, opts["output"])


@click.command(
    cls=HelpCommand,
    examples=[
        ("revoker prune inventory.csv --expired --dry-run", "what would be deleted (GETs only)"),
        ("revoker prune inventory.csv --older-than 90d", "cron: delete keys created 90+ days ago"),
        ("revoker prune inventory.csv --expired --resume", "finish an interrupted clean-up"),
    ],
)
@input_options
@client_options_with(
    resume_help="Skip pairs already deleted or found absent in the audit log.",
    dry_run_help="Send the GETs (to find what matches) and write the audit log; delete nothing.",
)
@click.option("--expired", is_flag=True, help="Delete pairs whose expiry has passed.")
@click.option(
    "--older-than",
    metavar="DURATION",
    help="Delete pairs created more than DURATION ago (90d, 12h, 30min, 2w, 6mo = 180d).",
)
@click.pass_context
def prune(ctx: click.Context, /, expired: bool, older_than: str | None, **opts: Any) -> int:
    """Cron clean-up: GET every key in every region, DELETE only the pairs that match.

    Give exactly one of --expired or --older-than. Agora cannot list keys, so
    KEYS (files, '-' for stdin, --key) is the inventory to check. With
    --dry-run the GETs are still sent (to know what matches) and nothing is
    deleted. --resume skips pairs already deleted or found absent.
    """
    from revoker.durations import parse_duration
    from revoker.engine.jobs.prune import PRUNE_RESUME_EVENTS, Pruner, Rule

    if expired == (older_than is not None):
        raise UsageError("give exactly one of --expired or --older-than DURATION")
    rule = Rule(expired=True) if expired else Rule(older_than=parse_duration(older_than or ""))
    settings = build_settings(opts)
    pruner = Pruner(rule, dry_run=settings.dry_run)
    report = _run(
        ctx,
        "prune",
        settings,
        opts,
        lambda s, plan: pruner.passes(plan),
        resume_events=PRUNE_RESUME_EVENTS,
        sends_in_dry_run=True,
    )
    report.notes += pruner.notes()
    return finish(ctx, report, opts["output"])


@click.command(
    cls=HelpCommand,
    examples=[
        (
            "revoker rotate leaked.csv --disconnect --new-keys-file new-keys.csv",
            "delete, cut the streams, issue replacements (same channel and uid)",
        ),
        (
            "revoker rotate leaked.csv --resume --new-keys-file new-keys.csv --append",
            "finish an interrupted rotation",
        ),
        ("revoker rotate leaked.csv --dry-run", "the plan; nothing sent, no file written"),
    ],
)
@input_options
@client_options_with(resume_help="Skip pairs already rotated or found absent in the audit log.")
@click.option(
    "--new-keys-file",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="PATH",
    help="Where the replacement keys go (CSV, created 0600; required). Never stdout or logs.",
)
@click.option("--append", is_flag=True, help="Add to an existing --new-keys-file.")
@click.option(
    "--expires-after",
    type=click.IntRange(0, MAX_DURATION),
    metavar="SECONDS",
    help="Validity of the new keys (0 = never expires). Default: the old key's.",
)
@click.option(
    "--disconnect",
    is_flag=True,
    help="Also force-disconnect live streams pushed with the old key, once it is deleted.",
)
@disconnect_timeout_option
@absent_ok_option
@click.pass_context
def rotate(
    ctx: click.Context,
    /,
    new_keys_file: Path | None,
    append: bool,
    expires_after: int | None,
    disconnect: bool,
    disconnect_timeout: float,
    absent_ok: bool,
    **opts: Any,
) -> int:
    """Delete every key in every region where it exists and create a replacement there.

    Each replacement has the old key's channel and uid; the new keys go only
    to --new-keys-file. KEYS as for revoke.
    """
    from revoker.engine.jobs.newkeys import NewKeysFile
    from revoker.engine.jobs.rotate import rotate_passes
    from revoker.engine.jobs.rotate_resume import ROTATE

    settings = build_settings(
        opts, disconnect=disconnect, disconnect_timeout=disconnect_timeout, absent_ok=absent_ok
    )
    missing = "rotate needs --new-keys-file PATH: the only place new keys are written"
    if new_keys_file is None and not settings.dry_run:
        raise UsageError(missing)
    if new_keys_file is not None:
        check_new_keys_path(new_keys_file, settings.audit_log, settings.inputs.sources)

    def passes(settings: RunSettings, plan: Plan) -> list[Pass]:
        if new_keys_file is None:  # a dry run stops before its passes are built
            raise UsageError(missing)
        new_keys = NewKeysFile(new_keys_file, append=append)  # created once the log is locked
        ctx.call_on_close(new_keys.close)
        return rotate_passes(settings, plan, new_keys, expires_after=expires_after)

    report = _run(ctx, ROTATE, settings, opts, passes, resume_events=(ROTATE,))
    return finish(ctx, report, opts["output"])


COMMANDS = (revoke, verify, prune, rotate)
