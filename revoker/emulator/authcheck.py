"""Server-side verification of Agora Basic and HMAC-SHA256 authentication."""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from email.utils import parsedate_to_datetime

from revoker.agora.auth import (
    basic_header,
    body_digest,
    hmac_signature,
    parse_hmac_authorization,
    string_to_sign,
)
from revoker.credentials import Credentials

#: How far the HMAC ``Date`` header may be from the server clock, in seconds.
MAX_CLOCK_SKEW = 15 * 60
HMAC_HEADERS = "host date request-line digest"


class AuthVerifier:
    """Checks the ``Authorization`` header of one request against one credential pair."""

    def __init__(self, creds: Credentials) -> None:
        self.creds = creds
        self._basic = basic_header(creds).encode("ascii")

    def check(
        self,
        authorization: bytes | None,
        *,
        method: str,
        target: str,
        host: str,
        date: str | None,
        digest: str | None,
        body: bytes,
    ) -> bool:
        """True when the request is authenticated.

        ``target`` is the request target exactly as sent: raw path plus ``?query``.
        """
        if not authorization:
            return False
        if authorization == self._basic:
            return True
        try:
            value = authorization.decode("latin-1")
        except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes any byte
            return False
        scheme = value.partition(" ")[0].lower()
        if scheme == "basic":
            return self._check_basic(value)
        if scheme == "hmac":
            return self._check_hmac(value, method, target, host, date, digest, body)
        return False

    def _check_basic(self, value: str) -> bool:
        try:
            decoded = base64.b64decode(value.partition(" ")[2].strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        user, sep, secret = decoded.partition(b":")
        return bool(sep) and (
            hmac.compare_digest(user, self.creds.customer_id.encode())
            & hmac.compare_digest(secret, self.creds.customer_secret.encode())
        )

    def _check_hmac(
        self,
        value: str,
        method: str,
        target: str,
        host: str,
        date: str | None,
        digest: str | None,
        body: bytes,
    ) -> bool:
        fields = parse_hmac_authorization(value)
        if not fields or date is None or digest is None:
            return False
        if fields.get("username") != self.creds.customer_id:
            return False
        if fields.get("algorithm", "").lower() != "hmac-sha256":
            return False
        if fields.get("headers", "").lower() != HMAC_HEADERS:
            return False
        try:
            sent_at = parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError):
            return False
        if abs(time.time() - sent_at) > MAX_CLOCK_SKEW:
            return False
        if not hmac.compare_digest(digest, body_digest(body)):
            return False
        expected = hmac_signature(
            self.creds.customer_secret, string_to_sign(host, date, method, target, digest)
        )
        return hmac.compare_digest(fields.get("signature", ""), expected)
