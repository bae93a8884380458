from __future__ import annotations

from revoker.agora.auth import (
    basic_header,
    body_digest,
    hmac_headers,
    parse_hmac_authorization,
    string_to_sign,
)
from revoker.credentials import Credentials

CREDS = Credentials("demo", "p@55w0rd")
DATE = "Tue, 15 Nov 1994 08:12:31 GMT"
PATH = "/na/v1/projects/9d2498880e934632b38b0a68fa2f1622/rtls/ingress/streamkeys/2dfMTRfys"
# Computed independently: printf '<string to sign>' | openssl dgst -sha256 -hmac 'p@55w0rd'
# -binary | base64
KNOWN_SIGNATURE = "2HvAstltObfCsSWNLdq6IQhFEvRFtthM/pMCwFTEeZU="
EMPTY_DIGEST = "SHA-256=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="


def test_basic_header_matches_the_api_docs_example() -> None:
    assert basic_header(Credentials("demo", "p@55w0rd")) == "Basic ZGVtbzpwQDU1dzByZA=="


def test_digest_of_empty_body_is_sha256_of_nothing() -> None:
    assert body_digest(b"") == EMPTY_DIGEST


def test_string_to_sign_has_the_documented_four_lines() -> None:
    signed = string_to_sign("api.agora.io", DATE, "delete", PATH, EMPTY_DIGEST)
    assert signed.split("\n") == [
        "host: api.agora.io",
        f"date: {DATE}",
        f"DELETE {PATH} HTTP/1.1",
        f"digest: {EMPTY_DIGEST}",
    ]


def test_hmac_signature_matches_a_vector_computed_with_openssl() -> None:
    headers = hmac_headers(CREDS, host="api.agora.io", method="DELETE", path=PATH, date=DATE)
    assert headers["Date"] == DATE
    assert headers["Digest"] == EMPTY_DIGEST
    assert headers["Authorization"] == (
        'hmac username="demo", algorithm="hmac-sha256", '
        f'headers="host date request-line digest", signature="{KNOWN_SIGNATURE}"'
    )


def test_parse_hmac_authorization_round_trips_and_rejects_basic() -> None:
    header = hmac_headers(CREDS, host="h", method="GET", path="/", date=DATE)["Authorization"]
    fields = parse_hmac_authorization(header)
    assert fields is not None
    assert fields["username"] == "demo"
    assert fields["headers"] == "host date request-line digest"
    assert parse_hmac_authorization("Basic abc") is None
