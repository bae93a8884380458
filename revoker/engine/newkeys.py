"""The new-keys file of ``revoker rotate``: the only place a replacement key is written.

A CSV file, mode 0600, created with ``O_EXCL`` (an existing file is refused
unless appending) and never through a symbolic link, only once the run holds
the audit log's lock (a run refused it leaves no file). Each row is written
with one ``os.write`` and fsynced before the rotation is recorded as done
in the audit log, so a key the audit log calls rotated is on disk.
"""

from __future__ import annotations

import csv
import io
import os
import stat
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
        self.path = path
        self.append = append
        self._fd: int | None = None
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
        line = _csv_line((app_id, region, channel, uid, old_key_id, new_key, str(expires_after)))
        try:
            written = os.write(self._fd, line)
            while written < len(line):
                written += os.write(self._fd, line[written:])
            os.fsync(self._fd)
        except OSError as exc:
            raise NewKeysWriteError(
                f"{self.path}: new-keys file write failed ({exc.strerror})"
            ) from None
        self.rows += 1

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


def _has_header(path: Path) -> bool:
    with path.open("rb") as handle:
        first = handle.readline()
    return first == _csv_line(HEADER)
