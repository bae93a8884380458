"""Property-based tests (hypothesis) on hostile input.

1. Any input file content gives a valid plan or exit 2 naming file and line; never
   a traceback.
2. Any key that passes validation is sent as exactly one path segment of the
   streaming-key endpoint and decodes back to exactly that key: checked on the URL
   (httpx.URL + unquote), by the emulator's router, and on the wire over loopback
   through the production transport (the emulator's journal records what arrived).
"""

from __future__ import annotations

import asyncio
import json
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from revoker.agora.client import AgoraClient, key_path
from revoker.cli import main
from revoker.credentials import Credentials
from revoker.emulator.process import EmulatorProcess
from revoker.emulator.routes import parse_path
from revoker.engine.input.sources import check_key
from revoker.models import REGIONS
from revoker.settings import ClientSettings

APP = "app_1-X"
PREFIX = "/{region}/v1/projects/app_1-X/rtls/ingress/streamkeys/"

# Text that looks like input files: CSV-ish structure, quotes, BOMs, NULs, non-UTF-8.
_pieces = st.sampled_from(
    [
        "stream_key", "app_id", "regions", ",", '"', "\n", "\r\n", "\r", "#", " ", "\t",
        "na", "eu;AP", "xx", "app1", "\x00", "\ufeff", "é", "..", "/", "%2F", "\u2028",
    ]
)  # fmt: skip
_text_content = st.lists(st.one_of(_pieces, st.text(max_size=8)), max_size=30).map("".join)
_content = st.one_of(
    _text_content.map(lambda s: s.encode("utf-8")),
    st.binary(max_size=200),
    _text_content.map(lambda s: s.encode("utf-8", "surrogatepass")),
)

# Keys: anything check_key accepts, biased towards URL-hostile characters.
_hostile = st.sampled_from([*list("/%?#.&=+;@:!$'()*,[]{}|\\^`\"<>~é€😀�"), "..", "%2F"])
_keys = st.one_of(
    st.text(min_size=1, max_size=40),
    st.lists(st.one_of(_hostile, st.text(max_size=3)), min_size=1, max_size=12).map("".join),
).filter(lambda k: check_key(k) is None)

_ERROR_LINE = re.compile(r"^revoker: error: (?P<file>.+?):(?P<line>\d+): \S")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(content=_content, suffix=st.sampled_from([".csv", ".txt", ""]))
@example(content=b"stream_key\n\xff\xfe\n", suffix=".csv")
@example(content=b'stream_key\n"unterminated\n', suffix=".csv")
@example(content=b"stream_key,app_id\nk1,app1,extra\n", suffix=".csv")
@example(content=b"", suffix=".csv")
@example(content=b"# only a comment\n", suffix=".txt")
def test_any_input_file_gives_a_plan_or_exit_2_with_file_and_line(
    content: bytes, suffix: str
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"keys{suffix}"
        path.write_bytes(content)
        result = CliRunner().invoke(
            main,
            ["revoke", "--dry-run", "--output", "json", "--app-id", "app1", str(path)],
            env={"AGORA_APP_ID": None, "AGORA_REGIONS": None},
        )
    assert isinstance(result.exception, SystemExit | None), result.exc_info
    assert "Traceback" not in result.output
    if result.exit_code == 0:
        plan = json.loads(result.stdout)["plan"]
        assert plan["tasks"] == sum(sum(r.values()) for r in plan["per_app_region"].values())
        assert plan["keys"] >= 1
        return
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("revoker: error:")]
    assert errors, result.stderr
    if "no stream keys given" in errors[0]:  # a file with no row at all (blank, comments)
        return
    match = _ERROR_LINE.match(errors[0])
    assert match is not None, result.stderr
    assert match["file"] == str(path)
    assert int(match["line"]) >= 1


@settings(max_examples=500, deadline=None)
@given(key=_keys, region=st.sampled_from(REGIONS))
@example(key="..", region="na")
@example(key=".", region="na")
@example(key="a/../..", region="eu")
@example(key="%2E%2E", region="ap")
@example(key="?region=cn#x", region="cn")
def test_valid_key_is_one_path_segment_that_decodes_back_to_the_key(key: str, region: str) -> None:
    path = key_path(region, APP, key)
    url = httpx.URL("https://api.agora.io" + path)
    raw = url.raw_path.decode("ascii")
    assert url.query == b""
    assert url.fragment == ""
    prefix = PREFIX.format(region=region)
    assert raw.startswith(prefix)
    segment = raw[len(prefix) :]
    assert segment
    assert "/" not in segment
    assert set(segment) != {"."}
    assert unquote(segment) == key
    route = parse_path(raw)
    assert route is not None
    assert (route.region, route.app_id, route.kind, route.item) == (region, APP, "keys", key)


def test_a_key_with_a_lone_surrogate_from_argv_is_refused_not_a_traceback() -> None:
    # A non-UTF-8 byte in argv reaches Python as a lone surrogate (surrogateescape).
    result = CliRunner().invoke(
        main, ["revoke", "--dry-run", "--app-id", "app1", "--key", "ab\udcffcd"]
    )
    assert result.exit_code == 2
    assert "--key:1: stream key is not valid UTF-8" in result.stderr
    assert isinstance(result.exception, SystemExit)


@pytest.fixture(scope="module")
def journaled_emulator() -> Iterator[tuple[EmulatorProcess, Path]]:
    with tempfile.TemporaryDirectory() as tmp:
        journal = Path(tmp) / "journal.jsonl"
        with EmulatorProcess("--journal", str(journal), "--delete-rps", "0") as emulator:
            yield emulator, journal


@pytest.mark.integration
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(key=_keys)
@example(key="..")
@example(key=".")
@example(key="a/../..")
@example(key="%7E~%2e")
def test_valid_key_arrives_at_the_server_as_exactly_that_key(
    journaled_emulator: tuple[EmulatorProcess, Path], key: str
) -> None:
    """Over loopback, with the production transport: what the server parsed is the key."""
    emulator, journal = journaled_emulator
    assume(check_key(key) is None)
    before = journal.stat().st_size if journal.exists() else 0

    async def send() -> int:
        client_settings = ClientSettings(
            base_url=emulator.base_url, auth="hmac", concurrency=1, timeout=10
        )
        creds = Credentials(emulator.credentials.customer_id, emulator.credentials.customer_secret)
        async with AgoraClient(client_settings, creds) as client:
            response = await client.delete_key("eu", APP, key)
            return response.status

    status = asyncio.run(send())
    with journal.open("rb") as handle:
        handle.seek(before)
        entries = [json.loads(line) for line in handle if line.strip()]
    assert len(entries) == 1
    (entry,) = entries
    assert entry["path"] == key_path("eu", APP, key)
    assert (entry["region"], entry["app_id"], entry["key"]) == ("eu", APP, key)
    assert status == 404  # the key endpoint answered: "not found", never a 405 elsewhere
