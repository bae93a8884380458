"""The command line: parse options into settings, call the core, print, exit.

This is the only place where errors become messages and exit codes.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from revoker import __version__
from revoker.cli.output import emit
from revoker.clickext import FiniteFloatRange
from revoker.engine.scanners import SCANNERS
from revoker.errors import EXIT_INTERRUPTED, EXIT_USAGE, RevokerError, UsageError
from revoker.models import Outcome, TaskResult
from revoker.redact import printable_lines
from revoker.settings import (
    ClientSettings,
    InputSettings,
    RetrySettings,
    RunSettings,
    Shard,
    check_audit_log_path,
    check_base_url,
    default_fallback,
    load_credentials,
    parse_regions,
)

F = TypeVar("F", bound=Callable[..., Any])


class RevokerGroup(click.Group):
    """Turns every RevokerError into a one-line message and its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RevokerError as exc:
            click.echo(f"revoker: error: {printable_lines(str(exc))}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("revoker: interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)


@click.group(cls=RevokerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="revoker")
@click.option(
    "--log-format",
    type=click.Choice(["auto", "console", "json"]),
    default="auto",
    envvar="REVOKER_LOG_FORMAT",
    show_default=True,
    help="Logs on stderr: console on a TTY, JSON otherwise.",
)
@click.option("-v", "--verbose", count=True, help="More logging (repeatable).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors on stderr.")
@click.option(
    "--no-color",
    is_flag=True,
    help="No colour and no progress bar on stderr (also: NO_COLOR set to anything).",
)
@click.pass_context
def main(ctx: click.Context, log_format: str, verbose: int, quiet: bool, no_color: bool) -> None:
    """Revoke Agora Media Gateway streaming keys in every region, with an audit trail."""
    from revoker.logs import configure, disable_color

    if no_color:
        disable_color()
    secrets = [os.environ.get("AGORA_CUSTOMER_SECRET", "")]
    configure(log_format, -1 if quiet else verbose, secrets=secrets)
    ctx.obj = {"quiet": quiet}


allow_non_ascii_option = click.option(
    "--allow-non-ascii-keys",
    is_flag=True,
    help="Accept keys with visible non-ASCII characters (invisible ones are always refused).",
)


def input_options(f: F) -> F:
    """Where keys come from and which regions/apps/shard they apply to."""
    decorators = [
        click.argument("sources", nargs=-1, metavar="[KEYS]..."),
        click.option(
            "--key",
            "keys",
            multiple=True,
            metavar="K",
            help="A stream key (repeatable); prefer files or stdin, argv is visible.",
        ),
        click.option("--app-id", envvar="AGORA_APP_ID", help="App ID for rows without one."),
        click.option(
            "--regions",
            envvar="AGORA_REGIONS",
            default="na,eu,ap,cn",
            show_default=True,
            help="Subset of regions, comma-separated.",
        ),
        click.option(
            "--shard",
            "shard_spec",
            metavar="I/N",
            help="Only shard I of N (0-based, stable hash of the key).",
        ),
        click.option(
            "--shard-count",
            type=click.IntRange(min=1),
            metavar="N",
            help="N shards, I from $JOB_COMPLETION_INDEX (Kubernetes Indexed Job).",
        ),
        click.option(
            "--skip-invalid",
            is_flag=True,
            help="Skip bad rows (reported) instead of refusing the run.",
        ),
        click.option(
            "--from",
            "scanner",
            type=click.Choice(SCANNERS),
            help="KEYS are this secret scanner's reports (gitleaks JSON, TruffleHog --json).",
        ),
        click.option(
            "--rule",
            "rules",
            multiple=True,
            metavar="ID",
            help="With --from: only findings of this rule / detector (repeatable).",
        ),
        allow_non_ascii_option,
    ]
    return _apply(f, decorators)


def _apply(f: F, decorators: Sequence[Callable[[Any], Any]]) -> F:
    """Apply click decorators in reading order (the first one is outermost)."""
    for decorator in reversed(decorators):
        f = decorator(f)
    return f


def connection_options(f: F) -> F:
    """How to reach and authenticate to the API, and how hard to retry."""
    return _apply(
        f,
        [
            click.option(
                "--base-url",
                envvar="AGORA_BASE_URL",
                default="https://api.agora.io",
                show_default=True,
                help="API base URL (http only for loopback).",
            ),
            click.option(
                "--fallback-url",
                envvar="AGORA_FALLBACK_BASE_URL",
                help="Alternate base URL on DNS/connect failure "
                "(default: api.sd-rtn.com <-> api.agora.io).",
            ),
            click.option(
                "--allow-base-path",
                is_flag=True,
                help="Accept a --base-url/--fallback-url with a path (a proxy serving the "
                "API under it); refused by default.",
            ),
            click.option(
                "--auth",
                type=click.Choice(["basic", "hmac"]),
                envvar="AGORA_AUTH",
                default="basic",
                show_default=True,
                help="How requests are signed.",
            ),
            click.option(
                "--credentials-file",
                type=click.Path(path_type=Path),
                envvar="REVOKER_CREDENTIALS_FILE",
                help="File with AGORA_CUSTOMER_ID=... and AGORA_CUSTOMER_SECRET=... "
                "(mode 0600). Default: the environment.",
            ),
            click.option(
                "--max-attempts",
                type=click.IntRange(1, 100),
                default=6,
                show_default=True,
                help="Attempts per request.",
            ),
            click.option(
                "--timeout",
                type=FiniteFloatRange(min=0.1),
                default=10.0,
                show_default=True,
                help="Seconds per attempt: connect, send and the whole answer.",
            ),
        ],
    )


def run_options(f: F) -> F:
    """What a bulk run writes and how hard it pushes."""
    return _apply(
        f,
        [
            click.option(
                "--audit-log",
                type=click.Path(path_type=Path),
                envvar="REVOKER_AUDIT_LOG",
                default="revoker-audit.jsonl",
                show_default=True,
                help="Append-only JSONL audit log.",
            ),
            click.option(
                "--resume", is_flag=True, help="Skip tasks already done in the audit log."
            ),
            click.option(
                "--sign-key",
                type=click.Path(path_type=Path),
                envvar="REVOKER_SIGN_KEY",
                help="Ed25519 private key (PEM, mode 0600, from revoker keygen) "
                "signing the run's last audit line.",
            ),
            click.option(
                "--concurrency",
                type=click.IntRange(1, 1024),
                default=32,
                show_default=True,
                help="Requests in flight.",
            ),
            click.option(
                "--max-rps",
                type=FiniteFloatRange(min=0),
                default=None,
                help="Requests/s per app ID (default: Agora's limit, 50 DELETE, "
                "100 GET, divided by N with --shard I/N or --shard-count N; "
                "0 = no cap). Slows down on 429.",
            ),
            click.option("--dry-run", is_flag=True, help="Print the plan; send nothing."),
            click.option(
                "--reveal-keys", is_flag=True, help="Write plain keys into the audit log."
            ),
            click.option(
                "--output",
                type=click.Choice(["text", "json"]),
                default="text",
                show_default=True,
                help="Summary format on stdout.",
            ),
        ],
    )


def client_options(f: F) -> F:
    """Every option of a bulk run (revoke, verify, prune)."""
    return connection_options(run_options(f))


def client_settings(opts: dict[str, Any], concurrency: int) -> ClientSettings:
    """The connection options -> checked ClientSettings."""
    allow_path = bool(opts.get("allow_base_path"))
    base_url = check_base_url(opts["base_url"], allow_path=allow_path)
    fallback = opts.get("fallback_url")
    return ClientSettings(
        base_url=base_url,
        fallback_url=(
            check_base_url(fallback, allow_path=allow_path)
            if fallback
            else default_fallback(base_url)
        ),
        auth=opts["auth"],
        timeout=opts["timeout"],
        concurrency=concurrency,
    )


def _shard(spec: str | None, count: int | None) -> Shard | None:
    if spec and count:
        raise UsageError("give --shard I/N or --shard-count N, not both")
    if spec:
        return Shard.parse(spec)
    if count:
        index = os.environ.get("JOB_COMPLETION_INDEX")
        if index is None:
            raise UsageError("--shard-count needs $JOB_COMPLETION_INDEX (or use --shard I/N)")
        return Shard.parse(f"{index}/{count}")
    return None


def input_settings(opts: dict[str, Any]) -> InputSettings:
    """The input options -> checked InputSettings."""
    if opts.get("rules") and not opts.get("scanner"):
        raise UsageError("--rule selects scanner findings: give --from gitleaks|trufflehog")
    return InputSettings(
        sources=tuple(opts["sources"]),
        keys=tuple(opts["keys"]),
        app_id=opts.get("app_id") or None,
        regions=parse_regions(opts.get("regions")),
        skip_invalid=opts.get("skip_invalid", False),
        shard=_shard(opts.get("shard_spec"), opts.get("shard_count")),
        scanner=opts.get("scanner"),
        rules=tuple(opts.get("rules") or ()),
        allow_non_ascii_keys=opts.get("allow_non_ascii_keys", False),
    )


def build_settings(opts: dict[str, Any], **overrides: Any) -> RunSettings:
    """Options (as click parsed them) -> a typed, checked RunSettings."""
    inputs = input_settings(opts)
    check_audit_log_path(opts["audit_log"], inputs.sources)
    return RunSettings(
        inputs=inputs,
        client=client_settings(opts, opts["concurrency"]),
        retry=RetrySettings(max_attempts=opts["max_attempts"]),
        max_rps=opts["max_rps"],
        audit_log=opts["audit_log"],
        resume=opts["resume"],
        dry_run=opts["dry_run"],
        reveal_keys=opts["reveal_keys"],
        sign_key=opts.get("sign_key"),
        **overrides,
    )


class Progress:
    """A one-line progress display on stderr (only when stderr is a TTY)."""

    def __init__(self, total: int, label: str) -> None:
        self.total = total
        self.label = label
        self.done = 0
        self.bad = 0
        self._last = 0.0

    def __call__(self, result: TaskResult) -> None:
        self.done += 1
        if result.outcome in (Outcome.FAILED, Outcome.PRESENT, Outcome.UNKNOWN):
            self.bad += 1
        now = time.monotonic()
        if now - self._last >= 0.1 or self.done >= self.total:
            self._last = now
            width = 30
            filled = int(width * self.done / max(self.total, 1))
            emit(
                f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] "
                f"{self.done}/{self.total} problems={self.bad}",
                err=True,
                nl=self.done >= self.total,
            )


def _progress(ctx: click.Context, total: int, label: str) -> Progress | None:
    from revoker.logs import use_color

    # A redrawn line is terminal drawing: off where colour is off (NO_COLOR, --no-color).
    if ctx.obj.get("quiet") or not use_color(sys.stderr):
        return None
    return Progress(total, label)


def finish(report: Any, output: str) -> None:
    """Print the summary (and any unrecorded tasks), then exit with the report's code."""
    from revoker.render.summary import render

    if report.unrecorded:
        saved = report.unrecorded_file
        where = (
            f"their audit lines are saved in {saved}; append them to the log once there is room"
            if saved
            else "saving them to a file failed too; they are listed in the summary"
        )
        emit(
            f"revoker: error: {len(report.unrecorded)} completed tasks could not be "
            f"written to the audit log: {where}",
            err=True,
        )
    emit(render(report, output), work_done=not report.dry_run)
    sys.exit(report.exit_code)


def _run(
    ctx: click.Context,
    command: str,
    settings: RunSettings,
    resume_events: tuple[str, ...],
    passes_for: Callable[[RunSettings, Any], list[Any]],
    output: str,
    credentials_file: Path | None,
) -> None:
    from revoker.engine.run import execute, prepare
    from revoker.results import RunReport

    credentials = None if settings.dry_run else load_credentials(credentials_file=credentials_file)
    stdin = sys.stdin
    plan = prepare(settings, stdin, resume_events=resume_events)
    for error in plan.stats.invalid:
        click.echo(f"revoker: skipped invalid row: {error}", err=True)
    if settings.dry_run or credentials is None:
        plan.close()
        finish(RunReport(command, "-", None, plan.stats, dry_run=True), output)
        return
    passes = passes_for(settings, plan)
    total = plan.stats.tasks * len(passes)
    report = execute(
        command, settings, plan, credentials, passes, on_result=_progress(ctx, total, command)
    )
    finish(report, output)


def _verify_delay(verify: bool, seconds: float | None) -> float:
    if seconds is None:
        return RunSettings.verify_delay
    if not verify:
        raise UsageError("--verify-delay needs --verify")
    if not math.isfinite(seconds) or seconds < 0:
        raise UsageError(f"--verify-delay must be a number of seconds >= 0 (got {seconds})")
    return seconds


disconnect_timeout_option = click.option(
    "--disconnect-timeout",
    type=FiniteFloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Seconds to wait for each cut stream to be confirmed gone.",
)


@main.command()
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
    "(replication).  [default: 2]",
)
@click.option(
    "--disconnect", is_flag=True, help="Also force-disconnect live streams pushed with the key."
)
@disconnect_timeout_option
@click.pass_context
def revoke(
    ctx: click.Context,
    /,
    verify: bool,
    verify_delay: float | None,
    disconnect: bool,
    disconnect_timeout: float,
    **opts: Any,
) -> None:
    """Delete every key in every region (one DELETE per key and region).

    KEYS are CSV files (header stream_key[,app_id,regions]) or text files
    (one key per line, # comments); '-' reads stdin.
    """
    from revoker.engine.run import revoke_passes

    settings = build_settings(
        opts,
        verify=verify,
        verify_delay=_verify_delay(verify, verify_delay),
        disconnect=disconnect,
        disconnect_timeout=disconnect_timeout,
    )
    _run(
        ctx,
        "revoke",
        settings,
        ("revoke",),
        revoke_passes,
        opts["output"],
        opts["credentials_file"],
    )


@main.command()
@input_options
@client_options
@click.pass_context
def verify(ctx: click.Context, /, **opts: Any) -> None:
    """GET every key in every region: exit 0 only if every pair is absent."""
    from revoker.engine.run import verify_pass

    settings = build_settings(opts)
    _run(
        ctx,
        "verify",
        settings,
        (),
        lambda s, plan: [verify_pass(plan)],
        opts["output"],
        opts["credentials_file"],
    )


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
def keygen(path: Path) -> None:
    """Write an Ed25519 key pair for --sign-key: PATH (private, 0600) and PATH.pub.

    Keep PATH secret (a CI secret); commit PATH.pub so anyone can run
    revoker report --verify --public-key PATH.pub later.
    """
    from revoker.audit.signing import generate

    public = generate(path)
    click.echo(f"private key: {path} (mode 0600)\npublic key:  {public}")


@main.command()
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
    type=click.FloatRange(min=0),
    default=None,
    help="GET requests/s per app ID (default: Agora's 100; 0 = no cap).",
)
@click.option(
    "--all", "show_all", is_flag=True, help="Every live stream of the app, matched or not."
)
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def streams(show_all: bool, output: str, **opts: Any) -> None:
    """Live streams pushed with KEYS, per region (read-only; nothing is deleted).

    Lists the live streams of each app ID once per region and GETs each key
    (its channel and uid tie WHIP streams to it). Exit 1 if a matching stream
    is live or a region could not be checked, 0 if none, 3 if the
    credentials were rejected.
    """
    from revoker.engine.run import prepare
    from revoker.engine.streams import check_streams, render_streams
    from revoker.settings import GET_RPS

    settings = RunSettings(inputs=input_settings(opts))
    credentials = load_credentials(credentials_file=opts["credentials_file"])
    plan = prepare(settings, sys.stdin)
    for error in plan.stats.invalid:
        click.echo(f"revoker: skipped invalid row: {error}", err=True)
    try:
        report = check_streams(
            plan.tasks(),
            client_settings(opts, opts["concurrency"]),
            credentials,
            retry=RetrySettings(max_attempts=opts["max_attempts"]),
            get_rps=GET_RPS if opts["max_rps"] is None else opts["max_rps"],
            show_all=show_all,
        )
    finally:
        plan.close()
    click.echo(render_streams(report, output))
    sys.exit(report.exit_code)


@main.command()
@input_options
@client_options
@click.option(
    "--new-keys-file",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="PATH",
    help="Where the replacement keys go (CSV, created 0600; required). Never stdout or logs.",
)
@click.option("--append", is_flag=True, help="Add to an existing --new-keys-file.")
@click.option(
    "--expires-after",
    type=click.IntRange(min=0),
    metavar="SECONDS",
    help="Validity of the new keys (0 = never expires). Default: the old key's.",
)
@click.option(
    "--disconnect",
    is_flag=True,
    help="Also force-disconnect live streams pushed with the old key, once it is deleted.",
)
@disconnect_timeout_option
@click.pass_context
def rotate(
    ctx: click.Context,
    /,
    new_keys_file: Path | None,
    append: bool,
    expires_after: int | None,
    disconnect: bool,
    disconnect_timeout: float,
    **opts: Any,
) -> None:
    """Delete every key in every region where it exists and create a replacement there.

    Each replacement has the old key's channel and uid; the new keys go only
    to --new-keys-file. KEYS as for revoke.
    """
    from revoker.engine.newkeys import NewKeysFile
    from revoker.engine.rotate import rotate_passes
    from revoker.engine.rotate_resume import ROTATE

    settings = build_settings(opts, disconnect=disconnect, disconnect_timeout=disconnect_timeout)
    missing = "rotate needs --new-keys-file PATH: the only place new keys are written"
    if new_keys_file is None and not settings.dry_run:
        raise UsageError(missing)

    def passes(settings: RunSettings, plan: Any) -> list[Any]:
        if new_keys_file is None:  # a dry run stops before its passes are built
            raise UsageError(missing)
        new_keys = NewKeysFile.open(new_keys_file, append=append)
        ctx.call_on_close(new_keys.close)
        return rotate_passes(settings, plan, new_keys, expires_after=expires_after)

    _run(ctx, ROTATE, settings, (ROTATE,), passes, opts["output"], opts["credentials_file"])


def _register_emulator() -> None:
    from revoker.emulator.command import emulator

    main.add_command(emulator)


_register_emulator()


def _register_operations() -> None:
    from revoker.cli.ops import COMMANDS

    for command in COMMANDS:
        main.add_command(command)


_register_operations()


def run() -> None:
    """Console-script entry point."""
    try:
        main(prog_name="revoker")
    except KeyboardInterrupt:  # pragma: no cover - outside click's handling
        sys.exit(EXIT_INTERRUPTED)


if __name__ == "__main__":  # pragma: no cover
    run()

__all__ = ["EXIT_USAGE", "main", "run"]
