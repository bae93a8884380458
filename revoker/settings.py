"""Typed settings, built by the CLI (or a test) and handed to the core."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from revoker.errors import UsageError
from revoker.models import REGIONS
from revoker.net import is_loopback

DEFAULT_BASE_URL = "https://api.agora.io"
# Agora's reliability guide: on DNS or connect failure, the other domain.
FALLBACK_HOSTS = {"api.agora.io": "api.sd-rtn.com", "api.sd-rtn.com": "api.agora.io"}
DELETE_RPS = 50.0
GET_RPS = 100.0


def check_base_url(url: str, *, allow_path: bool = False) -> str:
    """Refuse anything but https, or plain http to a loopback host. Returns the URL sans '/'.

    A path is refused unless ``allow_path``: the API lives at the host's root, and a
    path copied from another Agora API (``/dev``) makes every request a stranger's 404.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        raise UsageError(f"base URL must be https://host[:port] (got {url!r})")
    if parts.scheme == "http" and not is_loopback(host):
        raise UsageError(f"plain http is refused for non-loopback host {host!r}; use https")
    # "?" or "#" alone parse as an empty query or fragment, yet every request's URL
    # would then carry its path inside that query or fragment.
    if "?" in url or "#" in url or parts.username or parts.password:
        raise UsageError("base URL must not carry credentials, a query or a fragment")
    if parts.path.strip("/") and not allow_path:
        raise UsageError(
            f"base URL {url!r} has a path ({parts.path!r}); the Media Gateway API is served "
            "at the host's root (give --allow-base-path if a proxy serves it under this path)"
        )
    return url.rstrip("/")


def default_fallback(base_url: str) -> str | None:
    parts = urlsplit(base_url)
    alt = FALLBACK_HOSTS.get(parts.hostname or "")
    if alt is None or parts.port is not None:
        return None
    return f"{parts.scheme}://{alt}{parts.path}".rstrip("/")


_FILE_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def check_audit_log_path(path: Path, sources: tuple[str, ...]) -> None:
    """Refuse, before anything is sent, an audit log that cannot be one.

    Not a regular file (a FIFO loses the records once read and blocks the run), or
    one of the input files (the run would append its records to its own input).
    """
    try:
        info = path.stat()
    except OSError:
        return  # a new file, or one the audit log itself reports it cannot open
    if not stat.S_ISREG(info.st_mode):
        kind = next((name for test, name in _FILE_KINDS if test(info.st_mode)), "not a file")
        raise UsageError(f"{path}: the audit log must be a regular file (this is {kind})")
    for source in sources:
        try:
            other = os.stat(source) if source != "-" else None
        except OSError:
            continue
        if other is not None and (other.st_dev, other.st_ino) == (info.st_dev, info.st_ino):
            raise UsageError(
                f"{path}: the audit log is also an input file ({source}); give another --audit-log"
            )


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file: the same inode (hard links, symbolic links), or,
    for files not there yet, the same path once links and ``..`` are resolved."""
    try:
        if os.path.samefile(a, b):
            return True
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)


def check_new_keys_path(path: Path, audit_log: Path, sources: tuple[str, ...]) -> None:
    """Refuse a new-keys file that is the audit log or an input file, before anything
    is sent: the plain new keys would land in a file that is kept, shared or re-read."""
    if _same_file(path, audit_log):
        raise UsageError(
            f"{path}: the new-keys file is the audit log ({audit_log}): the new keys would "
            "be written into it in plain text; give another --new-keys-file"
        )
    for source in sources:
        if source != "-" and _same_file(path, Path(source)):
            raise UsageError(
                f"{path}: the new-keys file is also an input file ({source}); "
                "give another --new-keys-file"
            )


@dataclass(frozen=True)
class ClientSettings:
    """How to reach the API."""

    base_url: str = DEFAULT_BASE_URL
    fallback_url: str | None = None
    auth: str = "basic"
    timeout: float = 10.0
    concurrency: int = 32

    @property
    def base_urls(self) -> tuple[str, ...]:
        return (self.base_url,) if self.fallback_url is None else (self.base_url, self.fallback_url)


@dataclass(frozen=True)
class RetrySettings:
    """Per-task retry policy."""

    max_attempts: int = 6
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    retry_after_cap: float = 60.0


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based)."""

    index: int
    count: int

    @classmethod
    def parse(cls, value: str) -> Shard:
        index, sep, count = value.partition("/")
        try:
            shard = cls(int(index), int(count))
        except ValueError:
            raise UsageError(f"--shard must be I/N, e.g. 0/3 (got {value!r})") from None
        if not sep or shard.count < 1 or not 0 <= shard.index < shard.count:
            raise UsageError(f"--shard must be I/N with 0 <= I < N (got {value!r})")
        return shard

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass(frozen=True)
class InputSettings:
    """Where keys come from and how rows are read."""

    sources: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    app_id: str | None = None
    regions: tuple[str, ...] = REGIONS
    skip_invalid: bool = False
    shard: Shard | None = None
    scanner: str | None = None  # --from: the files are this scanner's reports
    rules: tuple[str, ...] = ()  # --rule: only these rules' findings
    all_findings: bool = False  # --all-findings: every finding is a key (no --rule)
    allow_non_ascii_keys: bool = False


@dataclass(frozen=True)
class RunSettings:
    """Everything one run of revoke / verify / prune needs."""

    inputs: InputSettings = field(default_factory=InputSettings)
    client: ClientSettings = field(default_factory=ClientSettings)
    retry: RetrySettings = field(default_factory=RetrySettings)
    max_rps: float | None = None  # None: Agora's published limit for the method; 0: no cap
    audit_log: Path = Path("revoker-audit.jsonl")
    resume: bool = False
    dry_run: bool = False
    verify: bool = False
    verify_delay: float = 2.0  # seconds from a pair's DELETE to its verify GET (replication)
    disconnect: bool = False
    disconnect_timeout: float = 10.0  # seconds to confirm each cut stream is gone
    reveal_keys: bool = False
    sign_key: Path | None = None  # Ed25519 private key (PEM, 0600) signing run_finished
    # revoke, rotate: a key found in no region (and never deleted in the log) is done.
    absent_ok: bool = False

    def rps_for(self, method: str) -> float:
        """Requests/s per app ID for ``method``; 0 means no cap.

        Without ``max_rps``, Agora's limit divided by the shard count: the limit
        is per app ID, so N shards running at once share it.
        """
        if self.max_rps is not None:
            return self.max_rps
        cap = GET_RPS if method == "GET" else DELETE_RPS
        shard = self.inputs.shard
        return cap / shard.count if shard is not None else cap

    def public_options(self) -> dict[str, object]:
        """The options worth recording in ``run_started`` (no secret, no key)."""
        return {
            "regions": list(self.inputs.regions),
            "app_id": self.inputs.app_id,
            "sources": list(self.inputs.sources),
            "keys_on_command_line": len(self.inputs.keys),
            "shard": str(self.inputs.shard) if self.inputs.shard else None,
            "skip_invalid": self.inputs.skip_invalid,
            "from": self.inputs.scanner,
            "rules": list(self.inputs.rules),
            "all_findings": self.inputs.all_findings,
            "allow_non_ascii_keys": self.inputs.allow_non_ascii_keys,
            "base_url": self.client.base_url,
            "fallback_url": self.client.fallback_url,
            "auth": self.client.auth,
            "timeout": self.client.timeout,
            "concurrency": self.client.concurrency,
            "max_rps": self.max_rps,
            "max_attempts": self.retry.max_attempts,
            "resume": self.resume,
            "dry_run": self.dry_run,
            "verify": self.verify,
            "verify_delay": self.verify_delay,
            "disconnect": self.disconnect,
            "disconnect_timeout": self.disconnect_timeout,
            "reveal_keys": self.reveal_keys,
            "absent_ok": self.absent_ok,
        }
