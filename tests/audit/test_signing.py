"""revoker keygen, --sign-key, and the documented signed message."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from pathlib import Path

import httpx
import pytest
import respx
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from revoker.audit.signing import key_id
from revoker.cli import main
from tests.conftest import APP, BASE

pytestmark = pytest.mark.usefixtures("creds")


def revoke(tmp_path: Path, *extra: str) -> tuple[int, str]:
    args = ["revoke", "--key", "stream-key-0000-abcdef", "--app-id", APP, "--base-url", BASE]
    args += ["--audit-log", str(tmp_path / "audit.jsonl"), "--max-rps", "0", *extra]
    result = CliRunner().invoke(main, args)
    return result.exit_code, result.stderr


def keygen(path: Path) -> Path:
    result = CliRunner().invoke(main, ["keygen", str(path)])
    assert result.exit_code == 0, result.output
    return path.with_name(path.name + ".pub")


def test_keygen_writes_a_0600_private_key_and_a_public_key(tmp_path: Path) -> None:
    public = keygen(tmp_path / "audit-signing.pem")
    assert stat.S_IMODE((tmp_path / "audit-signing.pem").stat().st_mode) == 0o600
    assert public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    result = CliRunner().invoke(main, ["keygen", str(tmp_path / "audit-signing.pem")])
    assert result.exit_code == 2
    assert "already exists" in result.stderr


def test_keygen_with_a_dangling_public_key_symlink_refuses_and_leaves_no_private_key(
    tmp_path: Path,
) -> None:
    (tmp_path / "k.pem.pub").symlink_to(tmp_path / "nowhere")
    result = CliRunner().invoke(main, ["keygen", str(tmp_path / "k.pem")])
    assert result.exit_code == 2
    assert "k.pem.pub: already exists" in result.stderr
    assert not (tmp_path / "k.pem").exists()
    assert not (tmp_path / "nowhere").exists()


def test_a_signed_run_finished_verifies_with_the_documented_message(
    tmp_path: Path, api: respx.MockRouter
) -> None:
    """A third party can check the signature from the README's definition alone."""
    api.delete(url__regex=".*").mock(return_value=httpx.Response(200, json={"status": "success"}))
    public_path = keygen(tmp_path / "k.pem")
    code, stderr = revoke(tmp_path, "--sign-key", str(tmp_path / "k.pem"))
    assert code == 0, stderr
    line = (tmp_path / "audit.jsonl").read_bytes().splitlines()[-1]
    record = json.loads(line)
    body, _, _ = line.rpartition(b',"signature":')
    body += b"}"
    message = "revoker-audit-v1\n{}\n{}\n{}\n".format(
        record["run_id"], hashlib.sha256(body).hexdigest(), record["lines"]
    )
    public = serialization.load_pem_public_key(public_path.read_bytes())
    assert isinstance(public, Ed25519PublicKey)
    public.verify(base64.b64decode(record["signature"]), message.encode())
    assert record["signed_by"] == key_id(public)
    assert line.endswith(b'"}')
    assert list(record)[-1] == "signature"


def test_a_sign_key_readable_by_others_exits_2_and_sends_nothing(
    tmp_path: Path, api: respx.MockRouter
) -> None:
    route = api.route().mock(return_value=httpx.Response(200, json={"status": "success"}))
    keygen(tmp_path / "k.pem")
    (tmp_path / "k.pem").chmod(0o644)
    code, stderr = revoke(tmp_path, "--sign-key", str(tmp_path / "k.pem"))
    assert code == 2
    assert "readable by others" in stderr
    assert "chmod 600" in stderr
    assert route.call_count == 0


def test_a_sign_key_that_is_not_ed25519_exits_2_and_sends_nothing(
    tmp_path: Path, api: respx.MockRouter
) -> None:
    route = api.route().mock(return_value=httpx.Response(200, json={"status": "success"}))
    bad = tmp_path / "k.pem"
    bad.write_text("not a key\n")
    bad.chmod(0o600)
    code, stderr = revoke(tmp_path, "--sign-key", str(bad))
    assert code == 2
    assert "not an unencrypted PEM private key" in stderr
    assert route.call_count == 0
