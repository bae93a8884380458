"""Layered Content-Encoding over loopback: the size cap holds for every decoding layer."""

from __future__ import annotations

import gzip
import socket
import zlib
from pathlib import Path

import pytest

from .test_malformed_server import run_revoker, serve_with, task_lines

pytestmark = pytest.mark.integration

# 20 MB of JSON, a few kilobytes once compressed twice: over the 1 MiB cap once decoded.
_INNER = b"{" + b" " * 20_000_000 + b"}"
_GZIP_GZIP = gzip.compress(gzip.compress(_INNER, 9), 9)
_DEFLATE_GZIP = gzip.compress(zlib.compress(_INNER, 9), 9)
_GZIP = gzip.compress(_INNER, 9)


@pytest.mark.parametrize(
    ("headers", "body", "kind"),
    [
        (b"Content-Encoding: gzip, gzip\r\n", _GZIP_GZIP, "decoding_error"),
        (b"Content-Encoding: deflate, gzip\r\n", _DEFLATE_GZIP, "decoding_error"),
        (b"Content-Encoding: gzip\r\nContent-Encoding: gzip\r\n", _GZIP_GZIP, "decoding_error"),
        (b"Content-Encoding: identity\r\nContent-Encoding: gzip\r\n", _GZIP, "response_too_large"),
        (b"Content-Encoding: br\r\n", b"\x8b\x02\x80{}\x03", "decoding_error"),
    ],
    ids=["gzip-gzip", "deflate-gzip", "two-gzip-headers", "identity-then-gzip", "unknown"],
)
def test_a_layered_or_unknown_coding_fails_the_attempt_instead_of_decoding_unbounded(
    tmp_path: Path, headers: bytes, body: bytes, kind: str
) -> None:
    def answer(conn: socket.socket, _: bytes) -> None:
        head = b"HTTP/1.1 404 Not Found\r\n%sContent-Length: %d\r\n\r\n" % (headers, len(body))
        conn.sendall(head + body)

    for url in serve_with(answer):
        result = run_revoker(tmp_path, url, ["plain-stream-key-0001"], "--regions", "na")
    assert result.returncode == 1, result.stderr
    [task] = task_lines(tmp_path)
    assert task["outcome"] == "failed"
    assert task["message"] == f"no response: {kind} (1 attempts)"
