"""Seed files, live-stream files and the JSON state file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from revoker.emulator.seeds import load_live_streams, load_seed_keys
from revoker.emulator.state import EmulatorState, LiveStream, SeedError, StreamKey


def _write(tmp_path: Path, text: str, name: str = "seed.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_seed_keys_apply_defaults_and_regions(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "stream_key,app_id,regions,channel,uid,expires_after,created_at\n"
        "k1,,,c1,11,,\n"
        "k2,app2,NA; eu,c2,22,3600,1686820170\n",
    )
    state = EmulatorState()
    assert load_seed_keys(state, path, "app1", now=1_700_000_000) == 6
    for region in ("na", "eu", "ap", "cn"):
        assert state.get_key(region, "app1", "k1") == StreamKey("k1", "c1", "11", 0, 1_700_000_000)
    assert state.get_key("na", "app2", "k2") == StreamKey("k2", "c2", "22", 3600, 1686820170)
    assert state.get_key("eu", "app2", "k2") is not None
    assert state.get_key("ap", "app2", "k2") is None


def test_seed_keys_with_only_stream_key_column(tmp_path: Path) -> None:
    path = _write(tmp_path, 'stream_key\n"a,b"\n\n  \n')
    state = EmulatorState()
    assert load_seed_keys(state, path, "app1") == 4
    assert state.get_key("cn", "app1", "a,b") is not None


def test_plain_text_seed_file_is_one_key_per_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "# leaked keys\nkey-1\n\nkey_2\n", "keys.txt")
    state = EmulatorState()
    assert load_seed_keys(state, path, "app1") == 8
    assert state.get_key("eu", "app1", "key_2") is not None


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("stream_key,regions\nk1,na\nk2,mars\n", 3, "unknown region 'mars'"),
        ("stream_key,expires_after\nk1,soon\n", 2, "expires_after must be an integer"),
        ("stream_key,created_at\nk1,-5\n", 2, "created_at must not be negative"),
        ("stream_key,app_id\n,app\n", 2, "empty stream_key"),
        ("stream_key\nk1,extra\n", 2, "more fields than the header"),
    ],
)
def test_bad_seed_row_names_file_and_line(
    tmp_path: Path, text: str, line: int, fragment: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(SeedError) as info:
        load_seed_keys(EmulatorState(), path, "app1")
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert fragment in str(info.value)


def test_seed_row_without_any_app_id_is_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "stream_key\nk1\n")
    with pytest.raises(SeedError, match=r":2: no app_id"):
        load_seed_keys(EmulatorState(), path, None)


def test_missing_seed_file_is_a_seed_error(tmp_path: Path) -> None:
    with pytest.raises(SeedError, match="cannot read"):
        load_seed_keys(EmulatorState(), tmp_path / "absent.csv", "app1")


def test_seed_regions_are_case_insensitive_and_default_to_all(tmp_path: Path) -> None:
    path = _write(tmp_path, "stream_key,app_id,regions\nk1,app1,\nk2,app1,CN;na;cn\n")
    state = EmulatorState()
    load_seed_keys(state, path, None)
    assert {region for region, _, key in state.iter_keys() if key.stream_key == "k1"} == {
        "na", "eu", "ap", "cn"
    }  # fmt: skip
    assert {region for region, _, key in state.iter_keys() if key.stream_key == "k2"} == {
        "cn", "na"
    }  # fmt: skip
    with pytest.raises(SeedError, match="unknown region 'xx'"):
        load_seed_keys(EmulatorState(), _write(tmp_path, "stream_key,regions\nk,na;xx\n"), "a")


def test_live_streams_file_generates_missing_sids(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "stream_key,app_id,region,channel,uid,sid\nk1,app1,NA,room,7,SIDA\nk2,app1,eu,,,\n",
        "live.csv",
    )
    state = EmulatorState()
    assert load_live_streams(state, path, now=123) == 2
    assert state.streams["SIDA"].region == "na"
    assert state.streams["SIDA"].url == "rtmp://rtls-ingress-prod-na.agoramdn.com/live/k1"
    (generated,) = [s for s in state.streams.values() if s.sid != "SIDA"]
    assert generated.stream_key == "k2"
    assert len(generated.sid) == 32
    assert generated.begin_at == 123


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("stream_key,app_id\nk1,app1\n", 1, "missing column(s): region"),
        ("stream_key,app_id,region\nk1,app1,moon\n", 2, "unknown region"),
        ("stream_key,app_id,region,sid\nk1,a,na,S\nk2,a,na,S\n", 3, "duplicate sid"),
        ("stream_key,app_id,region,protocol\nk1,a,na,rtsp\n", 2, "unknown protocol"),
        ("stream_key,app_id,region,status\nk1,a,na,Paused\n", 2, "Started or Running"),
    ],
)
def test_bad_live_stream_row_names_file_and_line(
    tmp_path: Path, text: str, line: int, fragment: str
) -> None:
    path = _write(tmp_path, text, "live.csv")
    with pytest.raises(SeedError) as info:
        load_live_streams(EmulatorState(), path)
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert fragment in str(info.value)


def test_state_file_round_trips_keys_and_streams(tmp_path: Path) -> None:
    state = EmulatorState()
    state.add_key("eu", "app1", StreamKey("a/b", "c", "1", 60, 1686820170))
    state.add_stream(LiveStream("SID1", "app1", "eu", "a/b", "c", "1", begin_at=5))
    path = tmp_path / "state.json"
    state.save(path)
    loaded = EmulatorState.load(path)
    assert loaded.to_json() == state.to_json()
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_state_save_replaces_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("old")
    EmulatorState().save(path)
    assert json.loads(path.read_text()) == {"version": 1, "keys": [], "streams": []}


def test_corrupt_state_file_is_a_seed_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "{not json", "state.json")
    with pytest.raises(SeedError, match="invalid state file"):
        EmulatorState.load(path)


def test_delete_key_forgets_empty_buckets() -> None:
    state = EmulatorState()
    state.add_key("na", "app1", StreamKey("k"))
    assert state.delete_key("na", "app1", "k")
    assert not state.delete_key("na", "app1", "k")
    assert state.keys == {}
