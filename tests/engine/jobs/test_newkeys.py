"""The new-keys file of ``revoker rotate``: a key is appended only after a whole row."""

from __future__ import annotations

import csv
import errno
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from revoker.engine.jobs.newkeys import HEADER, NewKeysFile
from revoker.errors import NewKeysWriteError, UsageError

ROW = {
    "app_id": "app1",
    "region": "na",
    "channel": "news",
    "uid": "1001",
    "old_key_id": "sha256:" + "0" * 32,
    "expires_after": 0,
}


def rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as handle:
        return list(csv.reader(handle))


def test_a_row_cut_short_by_a_full_disk_is_cut_off_so_the_next_row_is_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "new.csv"
    keys = NewKeysFile(path)
    keys.open()
    real_write = os.write
    steps = iter(["short", "full"])

    def full_disk(fd: int, data: bytes) -> int:
        step = next(steps, None)
        if step == "short":
            return real_write(fd, bytes(data)[:30])
        if step == "full":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(NewKeysWriteError):
        keys.write(**ROW, new_key="NEWKEY-first-0001-abcdef")
    keys.write(**ROW, new_key="NEWKEY-second-0002-abcdef")
    keys.close()
    assert rows(path) == [list(HEADER), ["app1", "na", "news", "1001", ROW["old_key_id"],
                                          "NEWKEY-second-0002-abcdef", "0"]]  # fmt: skip


@pytest.mark.parametrize("tail", [b"app1,na,news,1001,sha256:00,NEWKEY-cut", b"app1,na,new\n"])
def test_append_refuses_a_file_whose_last_row_is_torn(tmp_path: Path, tail: bytes) -> None:
    path = tmp_path / "new.csv"
    path.write_bytes(",".join(HEADER).encode() + b"\n" + tail)
    path.chmod(0o600)
    with pytest.raises(UsageError, match=r"new.csv:2: the last row is torn"):
        NewKeysFile(path, append=True)
    assert path.read_bytes().endswith(tail), "left as it was"


SCRIPT = textwrap.dedent(
    """
    import csv, os, sys
    from pathlib import Path
    from revoker.engine.jobs.newkeys import HEADER, NewKeysFile
    from revoker.errors import NewKeysWriteError, UsageError
    path = Path(sys.argv[1]) / "new.csv"
    keys = NewKeysFile(path)
    keys.open()
    row = dict(app_id="app1", region="na", channel="news", uid="1001",
               old_key_id="sha256:" + "0" * 32, expires_after=0)
    written = 0
    try:
        while True:
            keys.write(**row, new_key=f"NEWKEY-{written:06d}-" + "k" * 90)
            written += 1
    except NewKeysWriteError:
        pass
    keys.close()
    data = path.read_bytes()
    assert data.endswith(b"\\n"), "no torn row left at the end"
    found = list(csv.reader(data.decode().splitlines()))
    assert len(found) == written + 1 and all(len(r) == len(HEADER) for r in found), found[-1]
    os.truncate(path, len(data) - 5)  # a torn row as an older revoker left it
    try:
        NewKeysFile(path, append=True)
    except UsageError as exc:
        assert "the last row is torn" in str(exc)
    else:
        raise AssertionError("a torn last row was accepted for --append")
    print("rows", written)
    """
)


def test_a_64_kib_tmpfs_filled_up_leaves_only_whole_rows(tmp_path: Path) -> None:
    """On a real full file system (a 64 KiB tmpfs in a private mount namespace)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare is not installed")
    mount = tmp_path / "small"
    mount.mkdir()
    command = (
        f"mount -t tmpfs -o size=64k tmpfs {mount} && "
        f'exec {sys.executable} -c "$REVOKER_TEST_SCRIPT" {mount}'
    )
    probe = subprocess.run(
        [unshare, "-rm", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {mount}"],
        capture_output=True,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {probe.stderr.decode().strip()}")
    done = subprocess.run(
        [unshare, "-rm", "sh", "-c", command],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "REVOKER_TEST_SCRIPT": SCRIPT},
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split()[-1]) > 100, "the disk filled up after many rows"
