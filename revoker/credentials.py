"""Agora customer credentials: the type, and loading them from the environment or a file.

Credentials never come from argv. Once loaded, the secret and the Basic token
made from it are registered with the log redactor, so no log line can show them.
"""

from __future__ import annotations

import base64
import io
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from revoker.errors import CredentialsError
from revoker.redact import MASK, secret_forms


@dataclass(frozen=True)
class Credentials:
    """Customer ID and secret. The secret never appears in ``repr``."""

    customer_id: str
    customer_secret: str = field(repr=False)

    def __repr__(self) -> str:
        return f"Credentials(customer_id={self.customer_id!r}, customer_secret={MASK!r})"

    @property
    def basic_token(self) -> str:
        """``base64(id:secret)``: what HTTP Basic sends after ``Basic``."""
        token = f"{self.customer_id}:{self.customer_secret}".encode()
        return base64.b64encode(token).decode("ascii")

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every form of the secret that may travel and must be blanked where it shows:
        the secret and the Basic token, each also URL-encoded and base64-encoded."""
        forms = dict.fromkeys(secret_forms(self.customer_secret) + secret_forms(self.basic_token))
        return tuple(sorted(forms, key=len, reverse=True))  # a longer form before its parts


def load_credentials(
    env: Mapping[str, str] | None = None, credentials_file: Path | None = None
) -> Credentials:
    """Credentials from a 0600 file (``KEY=value`` lines) or the environment.

    Never from argv. Error messages name variables and paths, never values.
    """
    env = os.environ if env is None else env
    values: dict[str, str] = {}
    if credentials_file is not None:
        values = _read_credentials_file(credentials_file)
    customer_id = values.get("AGORA_CUSTOMER_ID") or env.get("AGORA_CUSTOMER_ID", "")
    secret = values.get("AGORA_CUSTOMER_SECRET") or env.get("AGORA_CUSTOMER_SECRET", "")
    missing = [
        name
        for name, value in (("AGORA_CUSTOMER_ID", customer_id), ("AGORA_CUSTOMER_SECRET", secret))
        if not value
    ]
    if missing:
        raise CredentialsError(
            f"missing credentials: set {' and '.join(missing)} in the environment "
            "(or give --credentials-file)"
        )
    from revoker.logs import add_secret

    credentials = Credentials(customer_id, secret)
    for value in credentials.secrets:
        add_secret(value)
    return credentials


# A credentials file is two short lines; anything this large is not one.
MAX_CREDENTIALS_FILE = 64 * 1024


def _read_regular_file(path: Path) -> bytes:
    """The bytes of a 0600 regular file of at most MAX_CREDENTIALS_FILE bytes.

    Opened non-blocking and checked on the open descriptor: a FIFO with no writer
    must not hang the run, a device (``/dev/zero``) must not be read without end,
    and the file checked is the file read.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise CredentialsError(f"{path}: is a directory, not a credentials file")
        if not stat.S_ISREG(info.st_mode):
            raise CredentialsError(f"{path}: not a regular file (a pipe or a device?)")
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise CredentialsError(
                f"{path}: credentials file must not be readable by others "
                f"(mode {stat.S_IMODE(info.st_mode):o}; run chmod 600 {path})"
            )
        if info.st_size > MAX_CREDENTIALS_FILE:
            raise CredentialsError(
                f"{path}: {info.st_size} bytes, too large for a credentials file "
                f"(at most {MAX_CREDENTIALS_FILE})"
            )
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, 65536):
            size += len(chunk)
            if size > MAX_CREDENTIALS_FILE:  # it grew while being read
                raise CredentialsError(f"{path}: too large for a credentials file")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _read_credentials_file(path: Path) -> dict[str, str]:
    """``NAME=value`` lines parsed as a dotenv file (comments, ``export``, quotes, a BOM).

    Values are taken literally (no ``$VAR`` expansion: a secret may contain ``$``).
    """
    from dotenv.parser import parse_stream

    try:
        data = _read_regular_file(path)
        text = data.decode("utf-8-sig")
    except OSError as exc:
        raise CredentialsError(f"{path}: cannot read credentials file ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise CredentialsError(f"{path}:{line}: not UTF-8 text") from None
    values: dict[str, str] = {}
    for binding in parse_stream(io.StringIO(text)):
        if binding.key is None and not binding.error:
            continue  # a blank or comment line
        if binding.error or binding.key is None or binding.value is None:  # ``NAME`` alone
            raise CredentialsError(f"{path}:{binding.original.line}: expected NAME=value")
        values[binding.key] = binding.value
    return values
