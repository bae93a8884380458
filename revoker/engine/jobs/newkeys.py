"""The new-keys file of ``revoker rotate``: the only place a replacement key is written.

A CSV file, mode 0600, created with ``O_EXCL`` (an existing file is refused
unless appending) and never through a symbolic link, only once the run holds
the audit log's lock (a run refused it leaves no file). Each row is written
with one ``os.write`` and fsynced before the rotation is recorded as done
in the audit log, so a key the audit log calls rotated is on disk.

A row is appended only after a whole row: a write a full disk cut short is
cut off again (or, if even that fails, nothing more is written), and
``--append`` refuses a file whose last row is torn.
"""

from __future__ import annotations

import csv
import io
import os
import stat
from contextlib import suppress
from pathlib import Path

from revoker.errors import NewKeysWriteError, UsageError

HEADER = (
    "app_id",
    "region",
    "channel",
    "uid",
    "old_key_id",
    "new_stream_key",
    "expires_after",
)


def _csv_line(values: tuple[str, ...]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue().encode("utf-8")


def _exists(path: Path) -> UsageError:
    return UsageError(
        f"{path}: new-keys file already exists (give --append to add to it, or another path)"
    )


class NewKeysFile:
    """Appends replacement keys, one fsynced row each; nothing is created before :meth:`open`."""

    def __init__(self, path: Path, *, append: bool = False) -> None:
        """Refuses an existing file at once (unless appending), before the run
        takes the audit log; :meth:`open` checks again when it creates it."""
        if not append and os.path.lexists(path):
            raise _exists(path)
        if append:
            _check_existing(path)
        self.path = path
        self.append = append
        self._fd: int | None = None
        self._torn = False  # a cut-short row could not be cut off: write no more
        self.rows = 0

    def open(self) -> None:
        """Create ``path`` (0600) or, with ``append``, add to it; UsageError (exit 2) if not."""
        path = self.path
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        if not self.append:
            flags |= os.O_EXCL
        try:
            fd = os.open(path, flags, 0o600)
        except FileExistsError:
            raise _exists(path) from None
        except OSError as exc:
            raise UsageError(f"{path}: cannot create new-keys file ({exc.strerror})") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise UsageError(f"{path}: new-keys file must be a regular file")
            if info.st_mode & 0o077:
                raise UsageError(
                    f"{path}: new-keys file is readable by others "
                    f"(mode {stat.S_IMODE(info.st_mode):o}; run chmod 600 {path})"
                )
            if info.st_size == 0:
                os.write(fd, _csv_line(HEADER))
                os.fsync(fd)
            elif not _has_header(path):
                raise UsageError(f"{path}:1: not a revoker new-keys file (header differs)")
            else:
                _check_existing(path)  # again: it may have changed since the run started
        except OSError as exc:
            os.close(fd)
            raise UsageError(f"{path}: cannot write new-keys file ({exc.strerror})") from None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def write(
        self,
        *,
        app_id: str,
        region: str,
        channel: str,
        uid: str,
        old_key_id: str,
        new_key: str,
        expires_after: int,
    ) -> None:
        """Append one row and fsync it; NewKeysWriteError if the disk says no."""
        if self._fd is None:
            raise NewKeysWriteError(f"{self.path}: new-keys file is not open")
        if self._torn:
            raise NewKeysWriteError(
                f"{self.path}: its last row is torn and could not be cut off; nothing appended"
            )
        line = _csv_line((app_id, region, channel, uid, old_key_id, new_key, str(expires_after)))
        written = 0
        try:
            written = os.write(self._fd, line)
            while written < len(line):
                written += os.write(self._fd, line[written:])
            os.fsync(self._fd)
        except OSError as exc:
            if 0 < written < len(line):
                self._cut_off(written)
            raise NewKeysWriteError(
                f"{self.path}: new-keys file write failed ({exc.strerror})"
            ) from None
        self.rows += 1

    def _cut_off(self, written: int) -> None:
        """Remove the part of a row a full disk let through (a key cut short is no key)."""
        assert self._fd is not None
        try:
            os.ftruncate(self._fd, os.fstat(self._fd).st_size - written)
            with suppress(OSError):
                os.fsync(self._fd)
        except OSError:
            self._torn = True

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


def _check_existing(path: Path) -> None:
    """--append, before the run sends anything: a torn last row is refused now."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK)
    except OSError:
        return  # missing, a link or unreadable: open() says which
    try:
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode) and info.st_size and _has_header(path):
            _check_last_row(fd, path, info.st_size)
    finally:
        os.close(fd)


def _check_last_row(fd: int, path: Path, size: int) -> None:
    """UsageError if the file's last row is torn: not ended by a newline, or not a
    whole row (appending would glue the next key onto it)."""
    start = max(0, size - _TAIL)
    tail = os.pread(fd, size - start, start)
    if tail.endswith(b"\n"):
        last = tail[:-1].rsplit(b"\n", 1)[-1]
        try:
            rows = list(csv.reader([last.decode("utf-8")]))
        except (UnicodeDecodeError, csv.Error):
            rows = []
        if rows and len(rows[0]) == len(HEADER):
            return
    with path.open("rb") as handle:
        number = sum(1 for _ in handle)
    raise UsageError(
        f"{path}:{number}: the last row is torn (a write cut short, e.g. by a full disk): "
        "its key was not saved whole, and the audit log has that pair unknown (the key "
        "created but not saved: delete it and issue another). Move that row out of the "
        "file, then run again with --append; nothing was sent"
    )


_TAIL = 64 * 1024


def _has_header(path: Path) -> bool:
    with path.open("rb") as handle:
        first = handle.readline()
    return first == _csv_line(HEADER)
