"""The ``revoker emulator`` click command (also ``python -m revoker.emulator``).

Starlette and uvicorn are imported only when the command runs, so importing this
module (as ``revoker --help`` does) stays fast.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import click

from revoker.clickext import FiniteFloatRange
from revoker.errors import MissingExtraError

_RATE = FiniteFloatRange(0.0, 1.0)
_RPS = FiniteFloatRange(min=0.0)
_FILE = click.Path(dir_okay=False, path_type=Path)


def require_extra() -> None:
    """Starlette and uvicorn come with the ``emulator`` extra: say how to install it
    rather than end in an import traceback."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError(
            f"revoker emulator needs the emulator extra ({exc.name or 'starlette/uvicorn'} "
            "is not installed): pip install 'revoker[emulator]' "
            "(from a clone: pip install '.[emulator]'; make install sets up .venv with it)"
        ) from None


@click.command("emulator")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="0 = free port."
)
@click.option(
    "--customer-id",
    envvar="AGORA_CUSTOMER_ID",
    show_envvar=True,
    help="Customer ID the emulator accepts.",
)
@click.option(
    "--customer-secret",
    envvar="AGORA_CUSTOMER_SECRET",
    show_envvar=True,
    help="Customer secret the emulator accepts.",
)
@click.option(
    "--app-id", envvar="AGORA_APP_ID", show_envvar=True, help="App ID for seed rows without one."
)
@click.option("--latency-ms", type=_RPS, default=0.0, help="Delay added to every request.")
@click.option("--error-rate", type=_RATE, default=0.0, help="Fraction answered 500/502/503/504.")
@click.option("--reset-rate", type=_RATE, default=0.0, help="Fraction whose connection is dropped.")
@click.option("--throttle-rate", type=_RATE, default=0.0, help="Fraction answered 429.")
@click.option("--delete-rps", type=_RPS, default=50.0, show_default=True, help="0 = unlimited.")
@click.option("--get-rps", type=_RPS, default=100.0, show_default=True, help="0 = unlimited.")
@click.option("--create-rps", type=_RPS, default=50.0, show_default=True, help="0 = unlimited.")
@click.option(
    "--rate-limit-algorithm",
    type=click.Choice(["sliding-window", "fixed-window", "token-bucket"]),
    default="sliding-window",
    show_default=True,
    help="How the per-app rate limits count: any trailing second, calendar seconds, "
    "or a bucket that allows a burst of one second's worth.",
)
@click.option(
    "--jitter-ms",
    type=_RPS,
    default=0.0,
    help="Random 0..N ms added to every request's delay (network jitter).",
)
@click.option(
    "--create-latency-ms", type=_RPS, default=0.0, help="Extra delay of every create (POST)."
)
@click.option(
    "--fault-method",
    type=click.Choice(["GET", "DELETE", "POST"]),
    multiple=True,
    help="Inject faults only into these methods (repeatable; default: all).",
)
@click.option("--forbidden-app", multiple=True, help="App ID answered 403 (repeatable).")
@click.option("--seed-keys", type=_FILE, help="CSV of keys present at start.")
@click.option("--live-streams", type=_FILE, help="CSV of streams running at start.")
@click.option(
    "--state", "state_path", type=_FILE, help="JSON state loaded at start, saved at exit."
)
@click.option("--journal", type=_FILE, help="Append one JSON line per request.")
@click.option("--seed", type=int, help="Random seed for fault injection.")
@click.option(
    "--no-reconnect",
    is_flag=True,
    help="Disconnected streams stay gone even if their key still exists.",
)
@click.option(
    "--disconnect-delay-ms",
    type=_RPS,
    default=0.0,
    help="A force-disconnected stream stays listed this long (asynchronous disconnect).",
)
@click.option(
    "--quota-exhausted-app",
    multiple=True,
    help='App ID whose online-streams requests answer 429 "Resources quota limit '
    'exceeded." without Retry-After (repeatable).',
)
@click.option(
    "--unknown-app",
    type=click.Choice(["accept", "404", "400", "403"]),
    default="accept",
    show_default=True,
    help="How an app ID not in the seeds, the state, --app-id or --known-app is answered: "
    'any app exists, "not found" everywhere, 400 "Invalid app ID." or 403 not enabled.',
)
@click.option("--known-app", multiple=True, help="An app ID that exists (repeatable).")
@click.option(
    "--signed-host",
    metavar="HOST[:PORT]",
    help="HMAC: check signatures against this host, not the request's Host header "
    "(the emulator behind a proxy that rewrites Host).",
)
@click.pass_context
def emulator(
    ctx: click.Context,
    host: str,
    port: int,
    customer_id: str | None,
    customer_secret: str | None,
    app_id: str | None,
    latency_ms: float,
    error_rate: float,
    reset_rate: float,
    throttle_rate: float,
    delete_rps: float,
    get_rps: float,
    create_rps: float,
    rate_limit_algorithm: str,
    jitter_ms: float,
    create_latency_ms: float,
    fault_method: tuple[str, ...],
    forbidden_app: tuple[str, ...],
    seed_keys: Path | None,
    live_streams: Path | None,
    state_path: Path | None,
    journal: Path | None,
    seed: int | None,
    no_reconnect: bool,
    disconnect_delay_ms: float,
    quota_exhausted_app: tuple[str, ...],
    unknown_app: str,
    known_app: tuple[str, ...],
    signed_host: str | None,
) -> None:
    """Local Agora Media Gateway on 127.0.0.1, with fault injection.

    Prints base_url=http://127.0.0.1:PORT as its first line, then the variables
    to export. Stops on Ctrl-C or SIGTERM, saving --state.
    """
    require_extra()
    from revoker.credentials import Credentials
    from revoker.emulator.config import EmulatorConfig
    from revoker.emulator.seeds import load_live_streams, load_seed_keys
    from revoker.emulator.server import UnsafeHostError, serve
    from revoker.emulator.state import EmulatorState, SeedError

    if (customer_id is None) != (customer_secret is None):
        raise click.UsageError("give both --customer-id and --customer-secret, or neither")
    if customer_id is None or customer_secret is None:
        customer_id, customer_secret = "emu-" + secrets.token_hex(8), secrets.token_urlsafe(24)

    try:
        if state_path is not None and state_path.exists():
            state = EmulatorState.load(state_path)
            if seed_keys or live_streams:
                click.echo(f"note: {state_path} exists; seed files ignored", err=True)
        else:
            state = EmulatorState()
            if seed_keys is not None:
                load_seed_keys(state, seed_keys, app_id)
            if live_streams is not None:
                load_live_streams(state, live_streams)
    except SeedError as exc:
        raise click.UsageError(str(exc), ctx=ctx) from None

    config = EmulatorConfig(
        credentials=Credentials(customer_id, customer_secret),
        default_app_id=app_id,
        latency_ms=latency_ms,
        error_rate=error_rate,
        reset_rate=reset_rate,
        throttle_rate=throttle_rate,
        delete_rps=delete_rps,
        get_rps=get_rps,
        create_rps=create_rps,
        rate_limit_algorithm=rate_limit_algorithm,
        jitter_ms=jitter_ms,
        create_latency_ms=create_latency_ms,
        fault_methods=frozenset(fault_method),
        forbidden_apps=frozenset(forbidden_app),
        journal=journal,
        seed=seed,
        state_path=state_path,
        reconnect=not no_reconnect,
        disconnect_delay_ms=disconnect_delay_ms,
        quota_exhausted_apps=frozenset(quota_exhausted_app),
        unknown_app=unknown_app,
        known_apps=frozenset(known_app),
        signed_host=signed_host,
    )
    host_explicit = ctx.get_parameter_source("host") != click.core.ParameterSource.DEFAULT
    try:
        serve(
            config,
            host,
            port,
            announce=lambda line: click.echo(line),
            host_explicit=host_explicit,
            state=state,
        )
    except UnsafeHostError as exc:
        raise click.UsageError(str(exc), ctx=ctx) from None
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from None
