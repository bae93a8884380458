"""Agora RESTful authentication: HTTP Basic and HMAC-SHA256.

The HMAC scheme, as Agora's RESTful authentication guide defines it::

    digest  = "SHA-256=" + base64(sha256(body))
    signed  = "host: {host}\\ndate: {date}\\n{METHOD} {path} HTTP/1.1\\ndigest: {digest}"
    Authorization: hmac username="{id}", algorithm="hmac-sha256",
                   headers="host date request-line digest", signature="{b64 hmac}"
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from email.utils import formatdate

from revoker.credentials import Credentials


def basic_header(creds: Credentials) -> str:
    return "Basic " + creds.basic_token


def body_digest(body: bytes) -> str:
    return "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")


def http_date(timestamp: float | None = None) -> str:
    """RFC 7231 date in GMT, e.g. ``Tue, 15 Nov 1994 08:12:31 GMT``."""
    return formatdate(timestamp, usegmt=True)


def string_to_sign(host: str, date: str, method: str, path: str, digest: str) -> str:
    return f"host: {host}\ndate: {date}\n{method.upper()} {path} HTTP/1.1\ndigest: {digest}"


def hmac_signature(secret: str, message: str) -> str:
    mac = hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode("ascii")


def hmac_headers(
    creds: Credentials,
    *,
    host: str,
    method: str,
    path: str,
    body: bytes = b"",
    date: str | None = None,
) -> dict[str, str]:
    """The ``Date``, ``Digest`` and ``Authorization`` headers of one request."""
    date = date or http_date()
    digest = body_digest(body)
    signature = hmac_signature(
        creds.customer_secret, string_to_sign(host, date, method, path, digest)
    )
    authorization = (
        f'hmac username="{creds.customer_id}", algorithm="hmac-sha256", '
        f'headers="host date request-line digest", signature="{signature}"'
    )
    return {"Date": date, "Digest": digest, "Authorization": authorization}


def parse_hmac_authorization(value: str) -> dict[str, str] | None:
    """Split an ``hmac k="v", ...`` header into its fields; None if it is not one."""
    scheme, _, rest = value.partition(" ")
    if scheme.lower() != "hmac":
        return None
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, raw = part.strip().partition("=")
        if not sep or len(raw) < 2 or raw[0] != '"' or raw[-1] != '"':
            return None
        fields[name.strip()] = raw[1:-1]
    return fields
