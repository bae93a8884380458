from __future__ import annotations

import io
from pathlib import Path

import pytest

from revoker.engine.input.sources import KeyRow, Source, iter_rows, open_sources
from revoker.errors import InputError

APP = "app1"


def rows_of(tmp_path: Path, name: str, text: str, app: str | None = APP) -> list[object]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return list(iter_rows(open_sources((str(path),), ()), app))


def test_csv_rows_carry_key_app_regions_and_line(tmp_path: Path) -> None:
    rows = rows_of(tmp_path, "k.csv", "stream_key,app_id,regions\nk1,appA,na;EU\nk2,,\n")
    assert rows == [
        KeyRow("k1", "appA", ("na", "eu"), str(tmp_path / "k.csv"), 2),
        KeyRow("k2", APP, ("na", "eu", "ap", "cn"), str(tmp_path / "k.csv"), 3),
    ]


def test_csv_columns_may_come_in_any_order_and_extra_columns_are_ignored(
    tmp_path: Path,
) -> None:
    rows = rows_of(tmp_path, "k.csv", "note,regions,stream_key\nhello,cn,k1\n")
    assert rows == [KeyRow("k1", APP, ("cn",), str(tmp_path / "k.csv"), 2)]


def test_text_file_skips_comments_and_blank_lines(tmp_path: Path) -> None:
    rows = rows_of(tmp_path, "k.txt", "# leaked 2026-11-23\n\nk1\n   \nk2\r\n")
    assert [(r.key, r.line) for r in rows if isinstance(r, KeyRow)] == [("k1", 3), ("k2", 5)]


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("stream_key,app_id\nok,a\n,app1\n", 3, "empty stream key"),
        ("stream_key\nab cd\n", 2, "whitespace"),
        ("stream_key,regions\nk1,na;mars\n", 2, "unknown region 'mars'"),
        ("stream_key,regions\nk1,;\n", 2, "no region given"),
        ('stream_key\nk1\n"unterminated\n', 3, "malformed CSV"),
        ("stream_key,app_id\nk1,a,b,c\n", 2, "fields but the header has"),
        ("key,region\nk1,na\n", 1, "no 'stream_key' column"),
        ("stream_key\nk\x01ey\n", 2, "control character"),
    ],
)
def test_bad_csv_rows_name_the_line_and_the_reason(
    tmp_path: Path, text: str, line: int, reason: str
) -> None:
    errors = [r for r in rows_of(tmp_path, "k.csv", text) if isinstance(r, InputError)]
    assert errors, "expected an input error"
    assert errors[0].line == line
    assert reason in errors[0].reason
    assert str(errors[0]).startswith(f"{tmp_path / 'k.csv'}:{line}: ")


def test_a_regions_cell_takes_the_syntax_of_the_regions_option(tmp_path: Path) -> None:
    text = 'stream_key,regions\nk1,"EU, na"\nk2,cn;AP\nk3,\n'
    rows = rows_of(tmp_path, "k.csv", text)
    assert [r.regions for r in rows if isinstance(r, KeyRow)] == [
        ("na", "eu"), ("ap", "cn"), ("na", "eu", "ap", "cn")
    ]  # fmt: skip


def test_missing_app_id_is_an_error_when_no_default(tmp_path: Path) -> None:
    rows = rows_of(tmp_path, "k.txt", "k1\n", app=None)
    assert isinstance(rows[0], InputError)
    assert "no app ID" in rows[0].reason


def test_unreadable_file_is_an_input_error_naming_the_file(tmp_path: Path) -> None:
    rows = list(iter_rows(open_sources((str(tmp_path / "missing.csv"),), ()), APP))
    assert len(rows) == 1
    assert isinstance(rows[0], InputError)
    assert "missing.csv:1: cannot read file" in str(rows[0])


def test_invalid_utf8_is_reported_not_raised(tmp_path: Path) -> None:
    path = tmp_path / "k.txt"
    path.write_bytes(b"k1\n\xff\xfe\n")
    rows = list(iter_rows(open_sources((str(path),), ()), APP))
    assert isinstance(rows[-1], InputError)
    assert "UTF-8" in rows[-1].reason


def test_stdin_is_spooled_and_can_be_read_twice() -> None:
    sources = [Source("-", stdin=io.StringIO("k1\nk2\n"))]
    first = [r.key for r in iter_rows(sources, APP) if isinstance(r, KeyRow)]
    second = [r.key for r in iter_rows(sources, APP) if isinstance(r, KeyRow)]
    assert first == second == ["k1", "k2"]
    assert all(r.source == "<stdin>" for r in iter_rows(sources, APP) if isinstance(r, KeyRow))


def test_key_options_become_rows_named_dash_dash_key() -> None:
    rows = list(iter_rows(open_sources((), ("k1", "")), APP))
    assert isinstance(rows[0], KeyRow)
    assert isinstance(rows[1], InputError)
    assert str(rows[1]) == "--key:2: empty stream key"


def test_hostile_key_characters_are_accepted_as_data(tmp_path: Path) -> None:
    rows = rows_of(tmp_path, "k.txt", "a/../b?x#y\n...a\n%2F\n")
    assert [r.key for r in rows if isinstance(r, KeyRow)] == ["a/../b?x#y", "...a", "%2F"]


@pytest.mark.parametrize("key", [".", ".."])
def test_dot_segment_keys_are_refused_before_any_request(tmp_path: Path, key: str) -> None:
    (row,) = rows_of(tmp_path, "k.txt", f"{key}\n")
    assert isinstance(row, InputError)
    assert "dot segment" in row.reason


def test_csv_on_stdin_with_a_utf8_bom_is_read_as_csv() -> None:
    data = "\ufeffstream_key,app_id,regions\nleaked-key-1,appZ,na\n".encode()
    stdin = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")
    (row,) = list(iter_rows([Source("-", stdin=stdin)], APP))
    assert row == KeyRow("leaked-key-1", "appZ", ("na",), "<stdin>", 2)


def test_csv_header_after_blank_lines_is_still_a_csv_header(tmp_path: Path) -> None:
    rows = rows_of(tmp_path, "k.txt", "\n\nstream_key,regions\nk1,eu\n")
    assert rows == [KeyRow("k1", APP, ("eu",), str(tmp_path / "k.txt"), 4)]


def test_a_comma_in_a_text_key_is_refused_as_a_headerless_csv(tmp_path: Path) -> None:
    (row,) = rows_of(tmp_path, "k.txt", "leaked-key-1,app1,na\n")
    assert isinstance(row, InputError)
    assert "stream_key header" in row.reason


def test_invalid_utf8_on_stdin_is_an_input_error_with_the_line() -> None:
    stdin = io.TextIOWrapper(
        io.BytesIO(b"good-key\nbad-\xff-key\n"), encoding="utf-8", errors="surrogateescape"
    )
    rows = list(iter_rows([Source("-", stdin=stdin)], APP))
    assert isinstance(rows[-1], InputError)
    assert str(rows[-1]).startswith("<stdin>:")
    assert "UTF-8" in rows[-1].reason


def test_a_pipe_is_spooled_so_both_passes_see_every_row(tmp_path: Path) -> None:
    import os
    import threading

    fifo = tmp_path / "keys.fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_text("k1\nk2\n"))
    writer.start()
    sources = open_sources((str(fifo),), ())
    writer.join(timeout=5)
    first = [r.key for r in iter_rows(sources, APP) if isinstance(r, KeyRow)]
    second = [r.key for r in iter_rows(sources, APP) if isinstance(r, KeyRow)]
    assert first == second == ["k1", "k2"]


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("leakedK\u200bey-0001", "invisible character U+200B at column 8"),
        ("leaked\u202eKey-0001", "invisible character U+202E at column 7"),
        ("leaked\ufeffKey-0001", "invisible character U+FEFF at column 7"),
        ("leakedKey-000\uff21", "non-ASCII character U+FF21 at column 14"),
        ("leakede\u0301Key-0001", "combining character U+0301 at column 8"),
    ],
    ids=["zero-width-space", "bidi-override", "bom", "fullwidth", "combining"],
)
@pytest.mark.parametrize("form", ["text", "csv", "stdin", "--key"])
def test_keys_outside_printable_ascii_are_refused_in_every_input_form(
    tmp_path: Path, key: str, reason: str, form: str
) -> None:
    """A look-alike key would 404 ("absent") while the real one stays live."""
    if form == "--key":
        sources = open_sources((), (key,))
    elif form == "stdin":
        stdin = io.TextIOWrapper(io.BytesIO(f"k1\n{key}\n".encode()), encoding="utf-8")
        sources = [Source("-", stdin=stdin)]
    else:
        path = tmp_path / f"k.{form}"
        path.write_text(("stream_key\n" if form == "csv" else "") + f"k1\n{key}\n")
        sources = open_sources((str(path),), ())
    errors = [r for r in iter_rows(sources, APP) if isinstance(r, InputError)]
    assert [(e.line, e.reason.split(" (")[0]) for e in errors] == [
        (1 if form == "--key" else 2 if form != "csv" else 3, reason)
    ]


def test_allow_non_ascii_keys_accepts_visible_characters_never_invisible_ones(
    tmp_path: Path,
) -> None:
    keys = ("leakedKey-\uff21", "clé-e\u0301", "zero\u200bwidth", "bom\ufeffkey", "bidi\u202ekey")
    rows = list(iter_rows(open_sources((), keys), APP, allow_non_ascii=True))
    assert [r.key for r in rows if isinstance(r, KeyRow)] == list(keys[:2])
    assert [r.reason for r in rows if isinstance(r, InputError)] == [
        "invisible character U+200B at column 5",
        "invisible character U+FEFF at column 4",
        "invisible character U+202E at column 5",
    ]
    refused = list(iter_rows(open_sources((), keys[:1]), APP))
    assert isinstance(refused[0], InputError)
    assert "--allow-non-ascii-keys" in refused[0].reason


@pytest.mark.parametrize(
    "char",
    ["\u3164", "\uffa0", "\u115f", "\u2800", "\u034f", "\ufe0f", "\u180e", "\U000e0041"],
    ids=["hangul filler", "halfwidth filler", "choseong filler", "braille blank",
         "grapheme joiner", "variation selector", "mongolian separator", "tag letter"],
)  # fmt: skip
def test_allow_non_ascii_keys_refuses_default_ignorable_and_filler_characters(char: str) -> None:
    key = f"leaked{char}Key-0001"
    (row,) = iter_rows(open_sources((), (key,)), APP, allow_non_ascii=True)
    assert isinstance(row, InputError)
    assert row.reason == f"invisible character U+{ord(char):04X} at column 7"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("k.txt", "k1\nk2\n\ufeffk3\n"),
        ("k.txt", "k1\nk2\n\ufeff# a comment\n"),
        ("k.csv", "stream_key,regions\nk1,na\nk2,na\n\ufeffstream_key,regions\n"),
        ("k.csv", "regions,stream_key\nna,k1\nna,k2\n\ufeffna,k3\n"),
    ],
)
def test_a_bom_at_the_start_of_a_later_line_is_refused(
    tmp_path: Path, name: str, text: str
) -> None:
    """Concatenated exports: only the file's first bytes may be a BOM."""
    path = tmp_path / name
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())  # the first BOM is fine
    rows = list(iter_rows(open_sources((str(path),), ()), APP))
    errors = [r for r in rows if isinstance(r, InputError)]
    line = text.split("\n").index(next(x for x in text.split("\n") if x.startswith("\ufeff"))) + 1
    assert [(e.line, e.reason) for e in errors] == [
        (line, "UTF-8 byte order mark (U+FEFF) at the start of the line (files joined together?)")
    ]
    assert [r.key for r in rows if isinstance(r, KeyRow)] == ["k1", "k2"]


@pytest.mark.parametrize("name", ["k.txt", "k.csv"])
@pytest.mark.parametrize("bad_line", [1, 2, 5, 3000])
def test_invalid_utf8_names_the_line_it_is_on(tmp_path: Path, name: str, bad_line: int) -> None:
    lines = [f"key-{i:05d}".encode() for i in range(1, 4000)]
    lines[bad_line - 1] = b"key-\xff\xfe"
    header = b"stream_key\n" if name == "k.csv" else b""
    path = tmp_path / name
    path.write_bytes(header + b"\n".join(lines) + b"\n")
    errors = [
        r for r in iter_rows(open_sources((str(path),), ()), APP) if isinstance(r, InputError)
    ]
    assert [(e.line, e.reason) for e in errors] == [
        (bad_line + len(header and b"x"), "not valid UTF-8")
    ]


@pytest.mark.parametrize("column", ["stream_key", "app_id", "regions"])
def test_a_csv_with_a_known_column_twice_is_refused(tmp_path: Path, column: str) -> None:
    header = ["stream_key", "app_id", "regions", column]
    rows = rows_of(tmp_path, "k.csv", ",".join(header) + "\nk1,app1,na,k2\n")
    assert len(rows) == 1
    assert isinstance(rows[0], InputError)
    assert (rows[0].line, rows[0].reason) == (1, f"CSV header has 2 {column!r} columns")


def test_two_streams_over_stdin_read_at_once_each_see_every_line() -> None:
    # revoke --resume --verify reads the input for the DELETEs and, alongside, for
    # the pairs done in an earlier run: the two readers must not move each other.
    lines = [f"key-{i:05d}-abcdef" for i in range(5000)]
    source = Source("-", stdin=io.StringIO("".join(f"{k}\n" for k in lines)))
    first, second = source.open(), source.open()
    got_first, got_second = [], []
    for _ in lines:
        got_first.append(first.readline().rstrip("\n"))
        got_second.append(second.readline().rstrip("\n"))
    first.close()
    second.close()
    source.close()
    assert got_first == lines
    assert got_second == lines


KEY = "oltr0Q_3jC2Z8EM7KgFaCY2FI9flNPho"  # the shape of a key Agora creates
HINT = "oltr...Pho"


@pytest.mark.parametrize(
    ("value", "shape", "named"),
    [
        (f"rtmp://rtls-ingress-prod-na.agoramdn.com/live/{KEY}", "a URL (rtmp://...)", HINT),
        (f"rtmps://push.example.com/myapp/{KEY}", "a URL (rtmps://...)", HINT),
        (f"srt://push.example.com:6001?streamid=#!::r={KEY},h=push.example.com", "a URL", HINT),
        (f"rtls-ingress-prod-eu.agoramdn.com/live/{KEY}", "a push URL", HINT),
        (f"{KEY}?h=push.example.com", "an SRT stream ID", HINT),
        (f"push.example.com:6001?StreamID={KEY}", "an SRT stream ID", HINT),
        (f"STREAM_KEY={KEY}", "a NAME=VALUE assignment (STREAM_KEY=...)", HINT),
        (f'export AGORA_STREAM_KEY="{KEY}"', "a NAME=VALUE assignment", HINT),
        (f"stream_key=rtmp://h.example.com/live/{KEY}", "its value is a URL", HINT),
        ("https://whip-rtcpush-prod-na.agoramdn.com/whip", "a URL", "no stream key found"),
        ("REDACTED", "a placeholder (REDACTED)", ""),
        ("[REDACTED]", "a placeholder (REDACTED)", ""),
        (KEY[:8] + "********", "a masked value", ""),
        (KEY[:20] + "...", "a value cut off with '...'", ""),
        (HINT, "a key hint", ""),
    ],
)
def test_a_value_that_is_not_a_key_is_refused_by_its_shape_never_its_text(
    tmp_path: Path, value: str, shape: str, named: str
) -> None:
    (row,) = rows_of(tmp_path, "k.txt", f"{value}\n")
    assert isinstance(row, InputError)
    message = str(row)
    assert message.startswith(f"{tmp_path / 'k.txt'}:1: ")
    assert shape in message
    assert named in message
    assert KEY not in message
    assert value not in message or value in ("REDACTED", HINT)


@pytest.mark.parametrize("key", [KEY, "abc==", "AbC-_0123456789", "k00005?x=1Zq9", "...a"])
def test_keys_with_padding_or_punctuation_are_still_keys(tmp_path: Path, key: str) -> None:
    (row,) = rows_of(tmp_path, "k.txt", f"{key}\n")
    assert isinstance(row, KeyRow)
    assert row.key == key


def test_a_url_or_stream_id_given_with_key_is_refused_at_its_index() -> None:
    given = (KEY, f"rtmp://h.example.com/live/{KEY}", f"#!::h=push.example.com,r={KEY}")
    rows = list(iter_rows(open_sources((), given), APP))
    assert isinstance(rows[0], KeyRow)
    assert str(rows[1]).startswith("--key:2: a URL (rtmp://...), not a stream key")
    assert str(rows[2]) == (
        f"--key:3: an SRT stream ID, not a stream key: the key in it is {HINT}: give that key alone"
    )


def test_a_push_url_in_a_csv_cell_is_refused_at_its_line(tmp_path: Path) -> None:
    text = f'stream_key\n{KEY}\n"rtmp://h.example.com/live/{KEY},x"\n'
    rows = rows_of(tmp_path, "k.csv", text)
    assert isinstance(rows[0], KeyRow)
    assert str(rows[1]).startswith(f"{tmp_path / 'k.csv'}:3: a URL (rtmp://...)")
