"""Ed25519 signatures of an audit log's ``run_finished`` lines.

The signed message (UTF-8) is four lines, each ending in ``\\n``::

    revoker-audit-v1
    <run_id>
    <digest>
    <lines>

``digest`` is the SHA-256 (hex) of the ``run_finished`` line as written but
without its ``signature`` member: the writer serializes the record, signs,
then appends ``,"signature":"<base64>"`` before the closing ``}``. That line
holds ``prev``, so the signature covers every earlier line of the file
through the hash chain. ``lines`` is the record's own ``lines`` field.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from revoker.errors import UsageError

DOMAIN = "revoker-audit-v1"
_SIGNATURE_TAIL = re.compile(rb',"signature":"([A-Za-z0-9+/=]*)"\}$')


def message(run_id: str, digest: str, lines: int) -> bytes:
    """The exact bytes that are signed (see the module docstring)."""
    return f"{DOMAIN}\n{run_id}\n{digest}\n{lines}\n".encode()


def key_id(public: Ed25519PublicKey) -> str:
    """``sha256:`` + 32 hex of the raw public key: names the key in ``signed_by``."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "sha256:" + hashlib.sha256(raw).hexdigest()[:32]


@dataclass(frozen=True)
class Signer:
    """A loaded private key; :meth:`sign_line` appends the signature member."""

    private: Ed25519PrivateKey

    @property
    def key_id(self) -> str:
        return key_id(self.private.public_key())

    def sign_line(self, body: bytes, run_id: str, lines: int) -> bytes:
        """``body`` (one serialized JSON object) with ``"signature"`` added last."""
        digest = hashlib.sha256(body).hexdigest()
        signature = self.private.sign(message(run_id, digest, lines))
        encoded = base64.b64encode(signature)
        return body[:-1] + b',"signature":"' + encoded + b'"}'


def split_signature(line: bytes) -> tuple[bytes, bytes] | None:
    """(line without its signature member, raw signature), or None if unsigned/garbled."""
    match = _SIGNATURE_TAIL.search(line)
    if match is None:
        return None
    try:
        signature = base64.b64decode(match.group(1), validate=True)
    except (binascii.Error, ValueError):
        return None
    return line[: match.start()] + b"}", signature


def verify(
    public: Ed25519PublicKey, signature: bytes, run_id: str, body: bytes, lines: int
) -> bool:
    """True if ``signature`` signs ``body`` (the line without its signature) for this run."""
    digest = hashlib.sha256(body).hexdigest()
    try:
        public.verify(signature, message(run_id, digest, lines))
    except InvalidSignature:
        return False
    return True


def load_signer(path: Path) -> Signer:
    """The Ed25519 private key at ``path`` (PEM); UsageError unless the file is 0600."""
    try:
        info = path.stat()
        if info.st_mode & 0o077:
            raise UsageError(
                f"{path}: signing key is readable by others (mode "
                f"{stat.S_IMODE(info.st_mode):04o}); run chmod 600 {path}"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read signing key ({exc.strerror})") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise UsageError(f"{path}: not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise UsageError(f"{path}: not an Ed25519 key (make one with revoker keygen)")
    return Signer(key)


def load_public_key(path: Path) -> Ed25519PublicKey:
    """The Ed25519 public key at ``path`` (PEM); UsageError if it is not one."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read public key ({exc.strerror})") from None
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise UsageError(f"{path}: not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise UsageError(f"{path}: not an Ed25519 public key")
    return key


def generate(path: Path) -> Path:
    """Write a new key pair: ``path`` (private, 0600) and ``path.pub``; never overwrite."""
    public_path = path.with_name(path.name + ".pub")
    private = Ed25519PrivateKey.generate()
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for target in (path, public_path):
        if os.path.lexists(target):  # a dangling symlink too: O_EXCL refuses it
            raise UsageError(f"{target}: already exists; not overwritten")
    _write_new(path, private_pem, 0o600)
    try:
        _write_new(public_path, public_pem, 0o644)
    except UsageError:
        # A private key without its public half is of no use and a secret left lying.
        path.unlink(missing_ok=True)
        raise
    return public_path


def _write_new(path: Path, data: bytes, mode: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except OSError as exc:
        raise UsageError(f"{path}: cannot create ({exc.strerror})") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
