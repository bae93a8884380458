"""Servers that echo secrets back, over loopback: no recorded or printed text keeps any
run of 8 characters of the key or of the customer secret, however it was sent back."""

from __future__ import annotations

import base64
import json
import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from tests.reliability.helpers import revoker_env
from tests.reliability.helpers import run_revoker as helpers_run

from .test_malformed_server import SECRET, TOKEN, run_revoker, serve_with

pytestmark = pytest.mark.integration

KEY = "aB3/dE6+gH9-jK2_mN5/pQ8.sT1vW4"  # 30 characters, two of them encoded in a path
SURVIVABLE = 7  # a shorter run matches ordinary text too often to count as a leak


def longest_run(secret: str, text: str) -> int:
    """Length of the longest piece of ``secret`` found whole in ``text``."""
    best = 0
    for start in range(len(secret)):
        size = best + 1
        while start + size <= len(secret) and secret[start : start + size] in text:
            best, size = size, size + 1
    return best


def api_answer(status: int, body: dict[str, object]) -> Callable[[socket.socket, bytes], None]:
    """An answer in the API's own shape (status field, X-Request-ID echoed) to a request
    for a key; the listings of live streams (which send no key) find none."""

    def answer(conn: socket.socket, request: bytes) -> None:
        found = re.search(rb"(?i)x-request-id: *([^\r\n]+)", request)
        request_id = found.group(1) if found else b"-"
        code, shaped = status, {"status": "success" if status == 200 else "error", **body}
        if b"/online-streams" in request.split(b"\r\n", 1)[0]:
            code, shaped = 200, {"status": "success", "data": []}
        payload = json.dumps(shaped).encode()
        conn.sendall(
            b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nX-Request-ID: %s\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (code, request_id, len(payload), payload)
        )

    return answer


def text_answer(status: int, text: str) -> Callable[[socket.socket, bytes], None]:
    def answer(conn: socket.socket, request: bytes) -> None:
        if b"/online-streams" in request.split(b"\r\n", 1)[0]:
            api_answer(200, {})(conn, request)
            return
        payload = text.encode()
        conn.sendall(
            b"HTTP/1.1 %d X\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"
            % (status, len(payload), payload)
        )

    return answer


def leaks(tmp_path: Path, *outputs: str) -> dict[str, int]:
    text = "\n".join((*outputs, (tmp_path / "audit.jsonl").read_text()))
    return {"key": longest_run(KEY, text), "secret": longest_run(SECRET, text)}


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[str]:
    yield from serve_with(request.param)


# The key and the secret straddle the cut: 500 characters of an API message, 200 of a body.
_JSON_AT_CUT = "x" * 480 + KEY + " " + SECRET
_TEXT_AT_CUT = "y" * 188 + SECRET + " " + KEY


@pytest.mark.parametrize(
    "server",
    [api_answer(400, {"message": _JSON_AT_CUT}), text_answer(502, _TEXT_AT_CUT)],
    ids=["json-message", "text-body"],
    indirect=True,
)
def test_a_secret_straddling_the_message_cut_leaves_no_part_behind(
    tmp_path: Path, server: str
) -> None:
    result = run_revoker(tmp_path, server, [KEY])
    assert result.returncode == 1, result.stderr
    assert max(leaks(tmp_path, result.stdout, result.stderr).values()) <= SURVIVABLE


_GET_ECHO = api_answer(200, {"data": {"channel": KEY, "uid": f"u-{KEY}", "createdAt": 1}})


@pytest.mark.parametrize("server", [_GET_ECHO], indirect=True)
def test_a_key_echoed_as_channel_or_uid_is_masked_in_the_audit_log(
    tmp_path: Path, server: str
) -> None:
    result = run_revoker(tmp_path, server, [KEY], command="verify")
    assert result.returncode == 1, result.stderr  # the key is present
    assert leaks(tmp_path, result.stdout, result.stderr)["key"] <= SURVIVABLE


@pytest.mark.parametrize("server", [_GET_ECHO], indirect=True)
def test_show_masks_a_key_echoed_as_channel_or_uid(tmp_path: Path, server: str) -> None:
    env = revoker_env({"AGORA_CUSTOMER_ID": "cid", "AGORA_CUSTOMER_SECRET": SECRET})
    result = helpers_run(
        "show", KEY, "--app-id", "app1", "--base-url", server, "--max-attempts", "1", env=env
    )
    assert result.returncode == 0, result.stderr
    assert longest_run(KEY, result.stdout + result.stderr) <= SURVIVABLE, result.stdout


_ECHOES = " ".join(
    (
        re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), quote(KEY, safe="")),  # %2f
        quote(SECRET, safe="") + "&x",
        base64.b64encode(SECRET.encode()).decode(),
        base64.b64encode(f"cid:{SECRET}".encode()).decode().rstrip("="),
        quote(TOKEN, safe=""),
    )
)


@pytest.mark.parametrize("server", [api_answer(400, {"message": _ECHOES})], indirect=True)
def test_encoded_echoes_of_the_key_and_the_secret_are_blanked(tmp_path: Path, server: str) -> None:
    result = run_revoker(tmp_path, server, [KEY])
    assert result.returncode == 1, result.stderr
    text = result.stdout + result.stderr + (tmp_path / "audit.jsonl").read_text()
    for echoed in _ECHOES.split(" "):
        assert longest_run(echoed.removesuffix("&x"), text) <= SURVIVABLE, echoed


SPECIAL = "s3cr/t+k=y?&9f1 zQ"  # a secret with characters URL-encoding changes
_SPECIAL_ECHOES = (
    quote(SPECIAL, safe=""),
    re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), quote_plus(SPECIAL, safe="")),
    base64.urlsafe_b64encode(SPECIAL.encode()).decode(),
)


@pytest.mark.parametrize(
    "server", [api_answer(400, {"message": " ".join(_SPECIAL_ECHOES)})], indirect=True
)
def test_a_url_encoded_or_base64_secret_is_blanked(tmp_path: Path, server: str) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text(KEY + "\n")
    env = revoker_env({"AGORA_CUSTOMER_ID": "cid", "AGORA_CUSTOMER_SECRET": SPECIAL})
    result = helpers_run(
        "revoke", str(keys), "--app-id", "app1", "--base-url", server, "--max-attempts", "1",
        "--audit-log", str(tmp_path / "audit.jsonl"), env=env,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    text = result.stdout + result.stderr + (tmp_path / "audit.jsonl").read_text()
    for echoed in _SPECIAL_ECHOES:
        assert longest_run(echoed, text) <= SURVIVABLE, echoed
