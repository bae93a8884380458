"""The commands' option bundles, and their conversion into typed, checked settings.

Each bundle is a decorator adding a group of click options; the converters turn
what click parsed into the settings the engine takes, raising UsageError
(exit 2) for a combination no single option can check.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from revoker.clickext import FiniteFloatRange, RateRange
from revoker.engine.input.scanners import SCANNERS
from revoker.errors import UsageError
from revoker.models import parse_regions
from revoker.settings import (
    ClientSettings,
    InputSettings,
    RetrySettings,
    RunSettings,
    Shard,
    check_audit_log_path,
    check_base_url,
    default_fallback,
)

F = TypeVar("F", bound=Callable[..., Any])

# Every wait and rate has a sane range: past it a typo (1e308, 1e-300) would hang a
# run forever instead of being a usage error.
MAX_WAIT = 3600.0  # seconds: --timeout, --verify-delay, --disconnect-timeout
MIN_RATE, MAX_RATE = 0.01, 100_000.0  # requests/s for --max-rps (0: no cap)
RATE_TYPE = RateRange(MIN_RATE, MAX_RATE)


def _apply(f: F, decorators: Sequence[Callable[[Any], Any]]) -> F:
    """Apply click decorators in reading order (the first one is outermost)."""
    for decorator in reversed(decorators):
        f = decorator(f)
    return f


allow_non_ascii_option = click.option(
    "--allow-non-ascii-keys",
    is_flag=True,
    help="Accept keys with visible non-ASCII characters (invisible ones are always refused).",
)

absent_ok_option = click.option(
    "--absent-ok",
    is_flag=True,
    help="A key found in no region, and never deleted in this audit log, counts as "
    "done (keys already cleaned up). Default: listed as not found, exit 1.",
)

disconnect_timeout_option = click.option(
    "--disconnect-timeout",
    type=FiniteFloatRange(min=0, max=MAX_WAIT),
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="Seconds to wait for each cut stream to be confirmed gone.",
)


def input_options(f: F) -> F:
    """Where keys come from and which regions/apps/shard they apply to."""
    decorators = [
        # A path type, so shells complete file names; '-' is stdin.
        click.argument(
            "sources",
            nargs=-1,
            metavar="[KEYS]...",
            type=click.Path(dir_okay=False, allow_dash=True),
        ),
        click.option(
            "--key",
            "keys",
            multiple=True,
            metavar="K",
            help="A stream key (repeatable); prefer files or stdin, argv is visible.",
        ),
        click.option(
            "--app-id", envvar="AGORA_APP_ID", show_envvar=True, help="App ID for rows without one."
        ),
        click.option(
            "--regions",
            envvar="AGORA_REGIONS",
            show_envvar=True,
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
        click.option(
            "--all-findings",
            is_flag=True,
            help="With --from and no --rule: every finding is a stream key (send them all).",
        ),
        allow_non_ascii_option,
    ]
    return _apply(f, decorators)


def connection_options(f: F) -> F:
    """How to reach and authenticate to the API, and how hard to retry."""
    return _apply(
        f,
        [
            click.option(
                "--base-url",
                envvar="AGORA_BASE_URL",
                show_envvar=True,
                default="https://api.agora.io",
                show_default=True,
                help="API base URL (http only for loopback).",
            ),
            click.option(
                "--fallback-url",
                envvar="AGORA_FALLBACK_BASE_URL",
                show_envvar=True,
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
                show_envvar=True,
                default="basic",
                show_default=True,
                help="How requests are signed.",
            ),
            click.option(
                "--credentials-file",
                type=click.Path(path_type=Path),
                envvar="REVOKER_CREDENTIALS_FILE",
                show_envvar=True,
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
                type=FiniteFloatRange(min=0.1, max=MAX_WAIT),
                default=10.0,
                show_default=True,
                help="Seconds per attempt: connect, send and the whole answer.",
            ),
        ],
    )


RESUME_HELP = "Skip pairs already revoked or found absent in the audit log (an earlier run)."
DRY_RUN_HELP = "Print the plan and how long the real run takes at the cap; send nothing."


def output_option(*choices: str) -> Callable[[F], F]:
    """``--output`` (alias ``--format``, as on report): the summary's format on stdout."""
    return click.option(
        "--output",
        "--format",
        "output",
        type=click.Choice(choices or ("text", "json")),
        default="text",
        show_default=True,
        help="Summary format on stdout.",
    )


def run_options(f: F, *, resume_help: str = RESUME_HELP, dry_run_help: str = DRY_RUN_HELP) -> F:
    """What a bulk run writes and how hard it pushes."""
    return _apply(
        f,
        [
            click.option(
                "--audit-log",
                type=click.Path(path_type=Path),
                envvar="REVOKER_AUDIT_LOG",
                show_envvar=True,
                default="revoker-audit.jsonl",
                show_default=True,
                help="Append-only JSONL audit log.",
            ),
            click.option("--resume", is_flag=True, help=resume_help),
            click.option(
                "--sign-key",
                type=click.Path(path_type=Path),
                envvar="REVOKER_SIGN_KEY",
                show_envvar=True,
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
                type=RATE_TYPE,
                default=None,
                help="Requests/s per app ID (default: Agora's limit, 50 DELETE, "
                "100 GET, divided by N with --shard I/N or --shard-count N; "
                "0 = no cap). Slows down on 429.",
            ),
            click.option("--dry-run", is_flag=True, help=dry_run_help),
            click.option(
                "--reveal-keys", is_flag=True, help="Write plain keys into the audit log."
            ),
            output_option(),
        ],
    )


def client_options(f: F) -> F:
    """Every option of a bulk run (revoke, rotate)."""
    return connection_options(run_options(f))


def client_options_with(*, resume_help: str, dry_run_help: str = DRY_RUN_HELP) -> Callable[[F], F]:
    """Every option of a bulk run whose --resume or --dry-run means something else."""

    def decorate(f: F) -> F:
        return connection_options(
            run_options(f, resume_help=resume_help, dry_run_help=dry_run_help)
        )

    return decorate


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


def parse_shard(spec: str | None, count: int | None) -> Shard | None:
    """--shard I/N or --shard-count N (with $JOB_COMPLETION_INDEX) -> the Shard, if any."""
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
    if opts.get("all_findings") and not opts.get("scanner"):
        raise UsageError("--all-findings selects scanner findings: give --from gitleaks|trufflehog")
    if opts.get("scanner") and not opts.get("rules") and not opts.get("all_findings"):
        # A report holds other services' secrets too (cloud keys, tokens): each finding
        # sent would be disclosed to Agora in a URL path.
        raise UsageError(
            "--from without --rule would send every finding of the report to Agora, other "
            "services' secrets included: give --rule ID for the rule or detector that finds "
            "stream keys (e.g. --rule agora-stream-key), or --all-findings if every finding "
            "is a stream key"
        )
    return InputSettings(
        sources=tuple(opts["sources"]),
        keys=tuple(opts["keys"]),
        app_id=opts.get("app_id") or None,
        regions=parse_regions(opts.get("regions")),
        skip_invalid=opts.get("skip_invalid", False),
        shard=parse_shard(opts.get("shard_spec"), opts.get("shard_count")),
        scanner=opts.get("scanner"),
        rules=tuple(opts.get("rules") or ()),
        all_findings=opts.get("all_findings", False),
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


def check_verify_delay(verify: bool, seconds: float | None) -> float:
    """--verify-delay, checked: only with --verify, a number of seconds from 0 to MAX_WAIT."""
    if seconds is None:
        return RunSettings.verify_delay
    if not verify:
        raise UsageError("--verify-delay needs --verify")
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_WAIT:
        raise UsageError(
            f"--verify-delay must be a number of seconds from 0 to {MAX_WAIT:g} (got {seconds})"
        )
    return seconds
