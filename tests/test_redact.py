"""The one redactor: secrets blanked, control characters escaped, request IDs checked."""

from __future__ import annotations

import pytest

from revoker.redact import (
    markdown_cell,
    printable,
    printable_lines,
    server_request_id,
    server_text,
)

TOKEN = "Y2lkOnNlY3JldDEyMw"  # base64 without padding: only request-ID characters


def test_a_server_message_has_secrets_blanked_and_escapes_shown_as_text() -> None:
    text = server_text(f"bad token {TOKEN}\x1b[2K\rrevoked\u202e", [TOKEN])
    assert text == "bad token ***\\x1b[2K\\x0drevoked\\u202e"


def test_printable_text_is_unchanged() -> None:
    assert printable("Invalid key, see https://docs.agora.io — ünïcode") == (
        "Invalid key, see https://docs.agora.io — ünïcode"
    )


def test_printable_lines_keeps_line_breaks_but_escapes_the_rest() -> None:
    assert printable_lines("a\x1b[31m\nb\x07") == "a\\x1b[31m\nb\\x07"


@pytest.mark.parametrize(
    ("echoed", "recorded"),
    [
        ("7c0b5c1e-8d1f-4a8e-9e53-0d5f1c2b3a4d", "7c0b5c1e-8d1f-4a8e-9e53-0d5f1c2b3a4d"),
        (None, None),
        (TOKEN, "***"),
        (f"req-{TOKEN}", "***"),
        ("r" * 129, "(invalid)"),
        ("id with spaces", "(invalid)"),
        ("id\x1b[2K", "(invalid)"),
        ("", "(invalid)"),
    ],
)
def test_an_echoed_request_id_is_kept_only_if_short_safe_and_secret_free(
    echoed: str | None, recorded: str | None
) -> None:
    assert server_request_id(echoed, [TOKEN]) == recorded


def test_checking_a_request_id_twice_gives_the_same_answer() -> None:
    once = server_request_id(TOKEN, [TOKEN])
    assert server_request_id(once, ["other-secret"]) == once


def test_a_markdown_cell_carries_no_markup_from_the_server() -> None:
    cell = markdown_cell("a|b `code` <img src=x onerror=alert(1)> [x](http://e) &amp;\nnext")
    assert cell == (
        "a\\|b 'code' &lt;img src=x onerror=alert(1)&gt; \\[x\\](http://e) &amp;amp;\\\\x0anext"
    )


def test_server_data_blanks_secrets_at_any_depth_and_leaves_the_rest_exact() -> None:
    from revoker.redact import server_data

    deep: object = "tok-SECRET-x"
    for _ in range(5000):  # deeper than Python's recursion limit
        deep = [deep]
    data = {
        "channel": "SECRET",
        "streams": [{"url": "rtmp://h/live/key%2Fone", "uid": 7}, deep],
        "SECRET": None,
    }
    out = server_data(data, ("SECRET",))
    assert out["channel"] == "***"
    assert out["streams"][0] == {"url": "rtmp://h/live/key%2Fone", "uid": 7}
    inner = out["streams"][1]
    while isinstance(inner, list):
        inner = inner[0]
    assert inner == "tok-***-x"
    assert data["channel"] == "SECRET", "the server's data itself is left alone"
