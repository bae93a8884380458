"""The one redactor: secrets blanked, control characters escaped, request IDs checked."""

from __future__ import annotations

import base64

import pytest

from revoker.redact import (
    KeyDigests,
    clip,
    key_forms,
    markdown_cell,
    printable,
    printable_lines,
    redact,
    secret_forms,
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


KEY30 = "aB3/dE6+gH9-jK2_mN5/pQ8.sT1vW4"


def test_a_secret_straddling_the_cut_is_redacted_before_cutting() -> None:
    text = "x" * 480 + KEY30 + " tail"
    assert clip(text, 500, [KEY30]) == "x" * 480 + "*** tail"


def test_the_start_of_a_secret_left_at_the_end_is_masked_from_8_characters() -> None:
    assert clip("cut by the server: " + KEY30[:8], None, [KEY30]) == "cut by the server: ***"
    assert clip("short: " + KEY30[:7], None, [KEY30]) == "short: " + KEY30[:7]


def test_a_percent_encoded_key_is_blanked_whatever_the_case_of_its_hex_digits() -> None:
    forms = key_forms(KEY30)
    assert redact("echo aB3%2fdE6%2bgH9-jK2_mN5%2FpQ8.sT1vW4!", forms) == "echo ***!"


def test_every_encoding_of_the_secret_is_a_form_to_blank() -> None:
    secret = "p@ss w/rd+=?"
    forms = secret_forms(secret)
    for echoed in (
        secret,
        "p%40ss%20w%2Frd%2B%3D%3F",
        "p%40ss+w%2frd%2b%3d%3f",
        base64.b64encode(secret.encode()).decode(),
        base64.urlsafe_b64encode(secret.encode()).decode(),
    ):
        assert "***" in redact(f"[{echoed}]", forms), echoed
        assert redact(f"[{echoed}]", forms).strip("[]=") == "***", echoed


def test_the_longest_end_of_a_text_that_starts_a_secret_is_masked() -> None:
    secret = "abcdefghXabcdefghY"
    # The secret's first 8 characters stand twice in the tail; only the second run
    # goes on as the secret does.
    assert clip("zz abcdefghZ abcdefghX", None, [secret]) == "zz abcdefghZ ***"
    assert clip("zz abcdefghXabcdefgh", None, [secret]) == "zz ***"


def test_key_digests_mask_each_key_as_it_is_or_percent_encoded_in_either_case() -> None:
    keys = KeyDigests(["stream-key-0000-abcdef", "a/b+c=d0000", "short"])
    text = "x stream-key-0000-abcdef, a%2fb%2Bc%3Dd0000 a/b+c=d0000 short stream-key-0000-abcdeg"
    assert keys.mask(text) == "x ***, *** *** short stream-key-0000-abcdeg"
    assert keys.holds("a%2Fb%2Bc%3Dd0000")
    assert not keys.holds("a%2Fb")
    assert len(keys) == 2  # a key too short to blank is not kept


def test_no_key_digests_mask_nothing() -> None:
    assert KeyDigests().mask("stream-key-0000-abcdef") == "stream-key-0000-abcdef"


def test_a_cut_message_never_keeps_half_of_a_key_it_holds() -> None:
    key = "stream-key-0000-abcdef"
    keys = KeyDigests([key])
    text = "x" * 490 + key + "y" * 10_000
    assert clip(text, 500, [], keys) == "x" * 490 + "***" + "y" * 7
    assert server_text(f"{key} {key}", [], 20, keys) == "*** ***"


def test_a_request_id_holding_a_key_is_masked() -> None:
    keys = KeyDigests(["stream-key-0000-abcdef"])
    assert server_request_id("stream-key-0000-abcdef", [], keys) == "***"
    assert server_request_id("req-stream-key-0000-abcdef-1", [], keys) == "***"
    assert server_request_id("req-1234", [], keys) == "req-1234"


def test_key_digests_find_keys_across_sorted_runs_added_before_and_after_a_lookup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(KeyDigests, "RUN", 4)
    keys = KeyDigests(f"stream-key-{n:04d}" for n in range(10))
    assert keys.holds("stream-key-0009")
    for n in range(10, 23):
        keys.add(f"stream-key-{n:04d}")
    assert all(keys.holds(f"stream-key-{n:04d}") for n in range(23))
    assert not keys.holds("stream-key-0023")
