"""What shapes the emulator's behaviour: credentials, latency, faults, rate limits, files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from revoker.credentials import Credentials
from revoker.emulator.limiters import DEFAULT_ALGORITHM


@dataclass(frozen=True)
class EmulatorConfig:
    """Everything that shapes the emulator's behaviour. Rates are fractions 0..1."""

    credentials: Credentials
    default_app_id: str | None = None
    latency_ms: float = 0.0
    error_rate: float = 0.0
    reset_rate: float = 0.0
    throttle_rate: float = 0.0
    delete_rps: float = 50.0
    get_rps: float = 100.0
    create_rps: float = 50.0
    rate_limit_algorithm: str = DEFAULT_ALGORITHM
    jitter_ms: float = 0.0
    create_latency_ms: float = 0.0
    """Extra delay before a create is answered (and the key made): a create in flight."""
    fault_methods: frozenset[str] = field(default_factory=frozenset)
    """Methods the injected faults apply to (empty: every method)."""
    forbidden_apps: frozenset[str] = field(default_factory=frozenset)
    journal: Path | None = None
    seed: int | None = None
    state_path: Path | None = None
    reconnect: bool = True
    """Force-disconnecting a stream whose key still exists makes the encoder reconnect
    at once under a new SID (as the real service does); False turns that off."""
    disconnect_delay_ms: float = 0.0
    """A force-disconnected stream stays listed this long (the command is asynchronous)."""
    quota_exhausted_apps: frozenset[str] = field(default_factory=frozenset)
    """Apps whose online-streams requests answer 429 "Resources quota limit exceeded."
    without Retry-After."""
    unknown_app: str = "accept"
    """How an app ID the emulator does not know is answered, every way the docs allow:
    ``accept`` (any app ID exists), ``404`` (every key and stream "not found"), ``400``
    ("Invalid app ID.") or ``403`` (Media Gateway not enabled)."""
    known_apps: frozenset[str] = field(default_factory=frozenset)
    """App IDs that exist besides those of the seed files, the state and --app-id."""
    signed_host: str | None = None
    """The host HMAC signatures are checked against instead of the request's Host header:
    the emulator behind a proxy (prism proxy) that rewrites Host to its upstream."""
