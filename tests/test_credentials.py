"""Loading credentials: environment or a 0600 dotenv file; the secret never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from revoker.credentials import Credentials, load_credentials
from revoker.errors import CredentialsError

SECRET = "s3cr3t-value-xyz"


def test_credentials_come_from_the_environment() -> None:
    creds = load_credentials({"AGORA_CUSTOMER_ID": "id", "AGORA_CUSTOMER_SECRET": SECRET})
    assert creds.customer_id == "id"
    assert creds.customer_secret == SECRET


def test_missing_credentials_name_the_variables_not_values() -> None:
    with pytest.raises(CredentialsError) as info:
        load_credentials({"AGORA_CUSTOMER_ID": "id"})
    assert "AGORA_CUSTOMER_SECRET" in str(info.value)
    assert info.value.exit_code == 2


def test_a_0600_credentials_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "agora.env"
    path.write_text(f"# ops vault\nexport AGORA_CUSTOMER_ID=id\nAGORA_CUSTOMER_SECRET='{SECRET}'\n")
    path.chmod(0o600)
    assert load_credentials({}, path).customer_secret == SECRET


def test_a_credentials_file_others_can_read_is_refused_without_its_content(
    tmp_path: Path,
) -> None:
    path = tmp_path / "agora.env"
    path.write_text(f"AGORA_CUSTOMER_ID=id\nAGORA_CUSTOMER_SECRET={SECRET}\n")
    path.chmod(0o644)
    with pytest.raises(CredentialsError) as info:
        load_credentials({}, path)
    assert "chmod 600" in str(info.value)
    assert SECRET not in str(info.value)


def test_a_secret_from_a_credentials_file_is_blanked_in_logs(tmp_path: Path) -> None:
    import io

    import structlog

    from revoker.logs import configure

    path = tmp_path / "agora.env"
    path.write_text("AGORA_CUSTOMER_ID=id\nAGORA_CUSTOMER_SECRET=file-only-secret-42\n")
    path.chmod(0o600)
    stream = io.StringIO()
    configure("json", stream=stream)  # type: ignore[arg-type]
    load_credentials({}, path)
    structlog.get_logger().warning("oops", detail="server said file-only-secret-42")
    assert "file-only-secret-42" not in stream.getvalue()
    assert "***" in stream.getvalue()


def _credentials_file(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "agora.env"
    path.write_bytes(content)
    path.chmod(0o600)
    return path


@pytest.mark.parametrize(
    "content",
    [
        b"\xef\xbb\xbfAGORA_CUSTOMER_ID=id\nAGORA_CUSTOMER_SECRET=s3cr3t-value\n",
        b"AGORA_CUSTOMER_ID=id  # ops\nAGORA_CUSTOMER_SECRET=s3cr3t-value  # rotated 2026-01\n",
        b"export\tAGORA_CUSTOMER_ID=id\nexport  AGORA_CUSTOMER_SECRET=s3cr3t-value\n",
        b"AGORA_CUSTOMER_ID=\"id\"\nAGORA_CUSTOMER_SECRET='s3cr3t-value' # quoted\n",
    ],
    ids=["bom", "inline-comment", "export-tab", "quotes"],
)
def test_a_credentials_file_is_parsed_like_a_dotenv_file(tmp_path: Path, content: bytes) -> None:
    creds = load_credentials({}, _credentials_file(tmp_path, content))
    assert (creds.customer_id, creds.customer_secret) == ("id", "s3cr3t-value")


def test_a_dollar_in_a_file_secret_is_taken_literally(tmp_path: Path) -> None:
    path = _credentials_file(tmp_path, b"AGORA_CUSTOMER_ID=id\nAGORA_CUSTOMER_SECRET=a$HOME\n")
    assert load_credentials({}, path).customer_secret == "a$HOME"


@pytest.mark.parametrize(
    ("content", "where"),
    [
        (b"AGORA_CUSTOMER_ID=id\nAGORA_CUSTOMER_SECRET=s\xe9cret\n", "agora.env:2: not UTF-8 text"),
        (b"AGORA_CUSTOMER_ID=id\nAGORA_CUSTOMER_SECRET\n", "agora.env:2: expected NAME=value"),
    ],
)
def test_a_malformed_credentials_file_names_the_line_not_the_value(
    tmp_path: Path, content: bytes, where: str
) -> None:
    with pytest.raises(CredentialsError) as info:
        load_credentials({}, _credentials_file(tmp_path, content))
    assert where in str(info.value)
    assert "cret" not in str(info.value)
    assert info.value.exit_code == 2


def test_a_directory_as_credentials_file_is_refused_as_a_directory(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="is a directory, not a credentials file"):
        load_credentials({}, tmp_path)


def _mknod_zero(path: Path) -> Path:
    """A 0600 character device reading zeros without end (as /dev/zero), if allowed here."""
    import os
    import stat

    zero = os.stat("/dev/zero").st_rdev
    try:
        os.mknod(path, 0o600 | stat.S_IFCHR, zero)
    except PermissionError:
        pytest.skip("creating a device node needs CAP_MKNOD")
    return path


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_fifo_or_device_as_credentials_file_is_refused_without_reading(
    tmp_path: Path, kind: str
) -> None:
    import os

    from tests.reliability.helpers import revoker_env, run_revoker, write_keys_csv

    path = tmp_path / "creds.env"
    if kind == "fifo":
        os.mkfifo(path, 0o600)  # no writer: a blocking open or read would wait forever
    else:
        _mknod_zero(path)
    keys = write_keys_csv(tmp_path / "keys.csv", ["plain-stream-key-0001"])
    result = run_revoker(
        "revoke", str(keys), "--credentials-file", str(path), "--base-url", "http://127.0.0.1:9",
        "--audit-log", str(tmp_path / "a.jsonl"), env=revoker_env(), timeout=30,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert f"{path}: not a regular file" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_credentials_file_over_the_size_cap_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "creds.env"
    path.write_text(f"AGORA_CUSTOMER_ID=id\nAGORA_CUSTOMER_SECRET={SECRET}\n" + "#" * 70_000)
    path.chmod(0o600)
    with pytest.raises(CredentialsError, match="too large for a credentials file") as info:
        load_credentials({}, path)
    assert SECRET not in str(info.value)


def test_credentials_repr_hides_the_secret() -> None:
    creds = Credentials("demo", "p@55w0rd")
    assert "p@55w0rd" not in repr(creds)
    assert "p@55w0rd" not in str(creds)


def test_every_form_of_the_secret_is_blanked_once_loaded(tmp_path: Path) -> None:
    import io

    import structlog

    from revoker.agora.auth import basic_header
    from revoker.logs import configure

    stream = io.StringIO()
    configure("json", stream=stream)  # type: ignore[arg-type]
    creds = load_credentials({"AGORA_CUSTOMER_ID": "id", "AGORA_CUSTOMER_SECRET": SECRET})
    token = basic_header(creds).removeprefix("Basic ")
    assert {SECRET, token} <= set(creds.secrets)
    structlog.get_logger().warning("oops", echoed=f"{SECRET} {token}")
    assert SECRET not in stream.getvalue()
    assert token not in stream.getvalue()
