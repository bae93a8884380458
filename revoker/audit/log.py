"""The append-only JSONL audit log: writing it safely, reading it back.

Every line is one ``os.write`` on an ``O_APPEND`` file, made as soon as its
task ends, so a killed process loses nothing it has logged; ``fsync`` runs
in groups. Readers skip a torn line (a crash mid-write) and count it.
Each line carries ``prev``, the hash chain of :mod:`revoker.audit.chain`; the
file is locked (``flock``) while a run writes it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import json.encoder as _json_encoder
import os
import stat
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from revoker import __version__
from revoker.audit.chain import line_hash, tail_head
from revoker.errors import AuditLogError, AuditWriteError
from revoker.jsontext import loads
from revoker.logs import log
from revoker.models import DONE_OUTCOMES, TaskResult, done_digest
from revoker.redact import key_forms, redact, server_data

if TYPE_CHECKING:  # cryptography is imported only when a run signs
    from revoker.audit.signing import Signer

# Fields of GET data worth keeping (never streamKey: the key is masked).
DATA_FIELDS = {
    "channel": "channel",
    "uid": "uid",
    "expiresAfter": "expires_after",
    "createdAt": "created_at",
}


# The current second and its text, in one tuple: a line written from another thread
# never pairs one second with the text of another.
_STAMP: tuple[int, str] = (-1, "")


def now_rfc3339() -> str:
    """Now in UTC to the millisecond, as ``datetime.isoformat`` writes it, with ``Z``:
    ``2026-12-03T16:50:06.123Z``. The text up to the second is made once per second."""
    global _STAMP
    second, milli = divmod(time.time_ns() // 1_000_000, 1000)
    stamp = _STAMP
    if stamp[0] != second:
        t = time.gmtime(second)
        text = (
            f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
            f"T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}."
        )
        stamp = _STAMP = (second, text)
    return f"{stamp[1]}{milli:03d}Z"


class AuditLog:
    """Writer of one run's records. Open with :meth:`open`; close at the end."""

    def __init__(
        self,
        path: Path,
        fd: int,
        run_id: str,
        reveal_keys: bool,
        fsync_interval: float,
        head: str,
        signer: Signer | None = None,
    ) -> None:
        self.path = path
        self.head = head  # hash of the last whole line: the next line's prev
        # The hash of a torn line found at the end of the log: the first line written
        # after it names it (``after_torn``), so a verifier knows a crash left it there.
        self.after_torn: str | None = None
        self._broken = False  # a torn write that could not be undone: append no more
        self.lines = 0  # lines this run wrote
        self.signer = signer
        self.run_id = run_id
        self.reveal_keys = reveal_keys
        self._fd: int | None = fd
        self._fsync_interval = fsync_interval
        self._last_sync = time.monotonic()

    @classmethod
    def open(
        cls,
        path: Path,
        run_id: str,
        *,
        reveal_keys: bool = False,
        fsync_interval: float = 0.25,
        signer: Signer | None = None,
    ) -> AuditLog:
        """Create (mode 0600) or append to ``path`` and lock it; AuditLogError (exit 2)
        if it cannot, or if another run holds the lock.

        A symbolic link (even a dangling one) is refused: following it would let
        whoever placed it choose which file gets the records and a new mode.
        """
        if path.is_symlink():
            raise AuditLogError(f"{path}: audit log is a symbolic link; give the real path")
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # became a link after the check above
                raise AuditLogError(
                    f"{path}: audit log is a symbolic link; give the real path"
                ) from None
            raise AuditLogError(f"{path}: cannot open audit log ({exc.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise AuditLogError(
                f"{path}: another revoker run is writing this audit log (it is locked); "
                "wait for it to finish or give another --audit-log"
            ) from None
        try:
            info = os.fstat(fd)
            if stat.S_ISREG(info.st_mode) and info.st_mode & 0o077:
                os.fchmod(fd, 0o600)  # an existing log others could read: tighten it
                log.warning("audit log was readable by others; mode set to 0600", path=str(path))
            size = info.st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                os.write(fd, b"\n")  # end a line torn by a crash before appending
            head, torn = tail_head(fd)
        except OSError as exc:
            os.close(fd)
            raise AuditLogError(f"{path}: cannot write audit log ({exc.strerror})") from None
        except AuditLogError as exc:
            os.close(fd)
            raise AuditLogError(f"{path}: {exc}") from None
        audit = cls(path, fd, run_id, reveal_keys, fsync_interval, head, signer)
        audit.after_torn = torn
        return audit

    def write(self, record: dict[str, Any]) -> None:
        """Append one record (plus ``prev``) as one line; AuditWriteError if the disk says no."""
        self._append(_encode(self._chained(record)))

    def append_line(self, record: dict[str, Any]) -> None:
        """Append a line of another run as it stands (``run_id`` and ``ts`` its own),
        chained; it is not one of this run's ``lines``."""
        self._append(_encode(self._chained(record)))
        self.lines -= 1

    def _chained(self, record: dict[str, Any]) -> dict[str, Any]:
        """The record with ``prev`` (and ``after_torn`` on the first line after a torn one)."""
        if self.after_torn is None:
            return {**record, "prev": self.head}
        return {**record, "after_torn": self.after_torn, "prev": self.head}

    def _append(self, body: bytes) -> None:
        if self._fd is None:
            raise AuditWriteError(f"{self.path}: audit log is closed")
        if self._broken:
            raise AuditWriteError(
                f"{self.path}: a torn line could not be cut off; nothing appended"
            )
        data = body + b"\n"
        written = 0
        try:
            written = os.write(self._fd, data)
            while written < len(data):  # a short write: finish the same line
                written += os.write(self._fd, data[written:])
            now = time.monotonic()
            if now - self._last_sync >= self._fsync_interval:
                os.fsync(self._fd)
                self._last_sync = now
        except OSError as exc:
            if 0 < written < len(data):
                self._undo(written)
            raise AuditWriteError(f"{self.path}: audit write failed ({exc.strerror})") from None
        self.head = line_hash(body)
        self.after_torn = None
        self.lines += 1

    def _undo(self, written: int) -> None:
        """Cut off the part of a line a full disk let through, so the next line is not
        glued to it (the lock keeps other writers out); if even that fails, stop."""
        assert self._fd is not None
        try:
            os.ftruncate(self._fd, os.fstat(self._fd).st_size - written)
        except OSError:
            self._broken = True

    def event(self, event: str, **fields: Any) -> None:
        self.write(event_record(event, self.run_id, **fields))

    def run_started(self, command: str, options: dict[str, Any], counts: dict[str, Any]) -> None:
        self.event(
            "run_started",
            command=command,
            version=__version__,
            options=options,
            counts=counts,
            pid=os.getpid(),
        )

    def run_finished(self, **fields: Any) -> None:
        """The run's last line: ``lines`` written (this one included), signed with a key."""
        record = {"event": "run_finished", "ts": now_rfc3339(), "run_id": self.run_id, **fields}
        record.update(lines=self.lines + 1)
        record = self._chained(record)
        if self.signer is None:
            self._append(_encode(record))
            return
        record["signed_by"] = self.signer.key_id
        self._append(self.signer.sign_line(_encode(record), self.run_id, self.lines + 1))

    def task(self, event: str, result: TaskResult, **extra: Any) -> None:
        self.write(task_record(event, result, self.run_id, self.reveal_keys, **extra))

    def sync(self) -> None:
        """fsync now: a line that must be on disk before a request goes out."""
        if self._fd is None:
            raise AuditWriteError(f"{self.path}: audit log is closed")
        try:
            os.fsync(self._fd)
            self._last_sync = time.monotonic()
        except OSError as exc:
            raise AuditWriteError(f"{self.path}: audit fsync failed ({exc.strerror})") from None

    def close(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.fsync(fd)
        except OSError as exc:
            raise AuditWriteError(f"{self.path}: audit fsync failed ({exc.strerror})") from None
        finally:
            os.close(fd)


# json.dumps with these options, without building an encoder per line.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
# The C encoder behind it, made once: JSONEncoder.encode makes a new one per call. No
# circular check (a markers dict shared across calls would keep stale entries after a
# failed line): a record is a tree built for the line from server data parsed from
# JSON, so a cycle cannot occur; one would raise RecursionError, not ValueError.
_make_c_encoder = getattr(_json_encoder, "c_make_encoder", None)  # None: no C speedups
_C_ENCODER: Callable[[Any, int], Iterable[str]] | None = (
    _make_c_encoder(
        None, _ENCODER.default, _json_encoder.encode_basestring, None, ":", ",", False, False, True
    )
    if _make_c_encoder is not None
    else None
)


def _encode(record: dict[str, Any]) -> bytes:
    if _C_ENCODER is None:
        return _ENCODER.encode(record).encode("utf-8")
    return "".join(_C_ENCODER(record, 0)).encode("utf-8")


def save_unrecorded(log_path: Path, run_id: str, records: list[dict[str, Any]]) -> Path | None:
    """Write the lines the audit log refused to a new 0600 file; its path, or None.

    Next to the log first (the user looks there), else in the temporary
    directory (often another file system when the log's is full). The lines
    are audit lines: ``revoker report --merge-fallback FILE LOG`` appends them to
    the log once there is room, chained (and signed) as the writer would.
    """
    data = b"".join(
        (json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        for r in records
    )
    name = f"{log_path.name}.unrecorded-{run_id}.jsonl"
    for folder in (log_path.parent, Path(tempfile.gettempdir())):
        path = folder / name
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except OSError:
            continue
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(path)
            continue
        os.close(fd)
        return path
    return None


def answer_fields(result: TaskResult) -> dict[str, Any]:
    """What a line says of a request's answer: outcome, status, request IDs, attempts."""
    attempts = result.attempts
    last = attempts[-1] if attempts else None
    return {
        "outcome": str(result.outcome),
        "http_status": last.status if last else None,
        "request_id": last.request_id if last else None,
        "server_request_id": last.server_request_id if last else None,
        "host": last.host if last else None,
        "attempts": [a.to_record() for a in attempts],
        "duration_ms": result.duration_ms,
        "message": result.message,
    }


def event_record(event: str, run_id: str, **fields: Any) -> dict[str, Any]:
    """The JSON object of a line that is not a task's (:meth:`AuditLog.event`): for the
    fallback file, the line the log refused as it would have been written."""
    return {"event": event, "ts": now_rfc3339(), "run_id": run_id, **fields}


def task_record(
    event: str, result: TaskResult, run_id: str, reveal_keys: bool, **extra: Any
) -> dict[str, Any]:
    """The JSON object of one task line (README, "Audit log")."""
    task = result.task
    record: dict[str, Any] = {
        "event": event,
        "ts": now_rfc3339(),
        "run_id": run_id,
        "app_id": task.app_id,
        "region": task.region,
        "key_id": task.key_id,
        "key_hint": task.key_hint,
    }
    if reveal_keys:
        record["key"] = task.key
    record.update(answer_fields(result))
    echoed: dict[str, Any] = {}
    data = result.data
    if isinstance(data, dict):
        for name, field in DATA_FIELDS.items():
            if name in data:
                echoed[field] = data[name]
    if extra:
        echoed.update(extra)
    # What the server said (a GET's channel or uid, a stream's fields) may echo the key.
    if echoed:
        record.update(echoed if reveal_keys else _masked(echoed, key_forms(task.key)))
    return record


def _masked(fields: dict[str, Any], forms: tuple[str, ...]) -> dict[str, Any]:
    """``fields`` with every form of the key blanked in their strings (a server may
    echo the key as a channel or uid); flat values without a walk, for speed."""
    if not forms:
        return fields
    masked: dict[str, Any] = {}
    for name, value in fields.items():
        if isinstance(value, str):
            masked[name] = redact(value, forms)
        elif isinstance(value, dict | list):
            masked[name] = server_data(value, forms)
        else:
            masked[name] = value
    return masked


@dataclass
class ReadStats:
    lines: int = 0
    torn: int = 0


def iter_records(path: Path, stats: ReadStats | None = None) -> Iterator[dict[str, Any]]:
    """Every record of an audit log; torn or unparseable lines are skipped and counted."""
    stats = stats if stats is not None else ReadStats()
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise AuditLogError(f"{path}: cannot read audit log ({exc.strerror})") from None
    with handle:
        for raw in handle:
            stats.lines += 1
            if not raw.strip():
                continue
            try:
                record = loads(raw)
            except ValueError:  # NestedTooDeep too
                stats.torn += 1
                continue
            if well_formed(record):
                yield record
            else:
                stats.torn += 1


def iter_lines(
    handle: BinaryIO, stats: ReadStats | None = None
) -> Iterator[tuple[int, int, bytes, dict[str, Any] | None]]:
    """(number, byte offset, bytes without the newline, JSON object or None if torn) of
    every non-blank line from where ``handle`` stands; ``stats.lines`` counts them all.
    Torn lines are the caller's to count: a hash chain still takes a malformed object."""
    offset = 0
    for number, raw in enumerate(handle, start=1):
        at = offset
        offset += len(raw)
        if stats is not None:
            stats.lines += 1
        if not raw.strip():
            continue
        line = raw[:-1] if raw.endswith(b"\n") else raw
        try:
            record = loads(line)
        except ValueError:  # NestedTooDeep too
            record = None
        yield number, at, line, record if isinstance(record, dict) else None


_STRING_FIELDS = ("event", "ts", "outcome", "app_id", "region", "key_id", "key_hint", "run_id")
_NULLABLE_STRING_FIELDS = ("request_id", "server_request_id", "message", "sid")
_ATTEMPT_STRING_FIELDS = ("request_id", "host", "error", "server_request_id")
_STR_OR_NONE = (str, type(None))


def well_formed(record: Any) -> bool:
    """A dict with an event, whose contract fields (attempts' too) have the contract's types."""
    # Plain loops: every line of a large log passes here, and generators cost more.
    if not isinstance(record, dict) or not isinstance(record.get("event"), str):
        return False
    get = record.get
    for name in _STRING_FIELDS:
        value = get(name, "")
        if not isinstance(value, str):
            return False
    for name in _NULLABLE_STRING_FIELDS:
        if not isinstance(get(name), _STR_OR_NONE):
            return False
    attempts = get("attempts", [])
    if not isinstance(attempts, list):
        return False
    for attempt in attempts:
        if not isinstance(attempt, dict):
            return False
        for name in _ATTEMPT_STRING_FIELDS:
            if not isinstance(attempt.get(name), _STR_OR_NONE):
                return False
    return True


def load_done(path: Path, events: tuple[str, ...] = ("revoke",)) -> set[int]:
    """:func:`done_digest` of the tasks whose latest outcome is revoked or absent.

    Only the digests of pairs done so far are held (a later line that is not
    done removes its pair), not a record per pair.
    """
    done: set[int] = set()
    if not path.exists():
        return done
    done_values = {str(o) for o in DONE_OUTCOMES}
    for record in iter_records(path):
        if record.get("event") not in events:
            continue
        try:
            digest = done_digest(record["app_id"], record["region"], record["key_id"])
        except KeyError:
            continue
        if record.get("outcome") in done_values:
            done.add(digest)
        else:
            done.discard(digest)
    return done
