"""The one exception hierarchy. The CLI turns these into messages and exit codes."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_ABORTED = 3
EXIT_TAMPERED = 4
EXIT_INTERRUPTED = 130


class RevokerError(Exception):
    """Base of every expected failure; ``exit_code`` is what the CLI exits with."""

    exit_code = EXIT_FAILED


class UsageError(RevokerError):
    """Bad options or settings: nothing was sent."""

    exit_code = EXIT_USAGE


class InputError(UsageError):
    """A bad input row; names the source and line."""

    def __init__(self, source: str, line: int, reason: str) -> None:
        self.source = source
        self.line = line
        self.reason = reason
        super().__init__(f"{source}:{line}: {reason}")


class InputErrors(UsageError):
    """Several bad input rows, reported together."""

    def __init__(self, errors: list[InputError], more: int = 0) -> None:
        self.errors = errors
        self.more = more
        lines = [str(e) for e in errors]
        if more:
            lines.append(f"... and {more} more invalid rows")
        super().__init__("\n".join(lines))


class CredentialsError(UsageError):
    """Credentials missing, or a credentials file that is unsafe or unreadable."""


class MissingExtraError(UsageError):
    """A command needs an optional dependency that is not installed (its extra)."""


class AuditLogError(RevokerError):
    """The audit log cannot be opened, read or written."""

    exit_code = EXIT_USAGE


class AuditWriteError(AuditLogError):
    """A write to the audit log failed mid-run; sending stopped."""

    exit_code = EXIT_FAILED


class AuditVerifyError(RevokerError):
    """``report --verify``: a log's hash chain, head or signatures do not check out."""

    exit_code = EXIT_TAMPERED


class NewKeysWriteError(RevokerError):
    """A replacement key could not be written to ``rotate``'s new-keys file."""


class OutputError(RevokerError):
    """stdout cannot be written (full device, closed pipe).

    Exit 1 when requests were sent (the audit log holds their results), 2 when
    nothing was sent.
    """

    def __init__(self, message: str, *, work_done: bool) -> None:
        super().__init__(message)
        self.exit_code = EXIT_FAILED if work_done else EXIT_USAGE


class TransportFailure(RevokerError):
    """A request got no HTTP response (connect, timeout, reset, protocol).

    ``connect`` is true when the connection was never established (DNS or
    refused), which is when a fallback host is worth trying.
    """

    def __init__(self, kind: str, host: str, connect: bool, request_id: str, ms: int) -> None:
        self.kind = kind
        self.host = host
        self.connect = connect
        self.request_id = request_id
        self.ms = ms
        super().__init__(f"{kind} talking to {host}")
