from __future__ import annotations

from pathlib import Path

import pytest

from revoker.engine.input.planner import build_plan, shard_of
from revoker.engine.input.sources import open_sources
from revoker.errors import InputErrors, UsageError
from revoker.models import Task, done_digest, key_id
from revoker.settings import InputSettings, Shard


def plan_for(tmp_path: Path, text: str, **settings: object) -> list[Task]:
    path = tmp_path / "keys.txt"
    path.write_text(text, encoding="utf-8")
    opts = InputSettings(sources=(str(path),), app_id="app1", **settings)  # type: ignore[arg-type]
    return list(build_plan(open_sources(opts.sources, ()), opts).tasks())


def test_every_key_is_planned_in_every_region(tmp_path: Path) -> None:
    tasks = plan_for(tmp_path, "k1\nk2\n")
    assert tasks == [Task("app1", r, k) for k in ("k1", "k2") for r in ("na", "eu", "ap", "cn")]


def test_duplicate_keys_are_planned_once(tmp_path: Path) -> None:
    tasks = plan_for(tmp_path, "k1\nk1\nk1\n")
    assert len(tasks) == 4


def test_regions_option_restricts_the_plan(tmp_path: Path) -> None:
    tasks = plan_for(tmp_path, "k1\n", regions=("eu", "cn"))
    assert [t.region for t in tasks] == ["eu", "cn"]


def test_same_key_under_two_apps_is_two_keys(tmp_path: Path) -> None:
    path = tmp_path / "keys.csv"
    path.write_text("stream_key,app_id,regions\nk1,a,na\nk1,b,na\nk1,a,na;eu\n")
    opts = InputSettings(sources=(str(path),))
    plan = build_plan(open_sources(opts.sources, ()), opts)
    assert list(plan.tasks()) == [
        Task("a", "na", "k1"),
        Task("b", "na", "k1"),
        Task("a", "eu", "k1"),
    ]
    assert plan.stats.keys == 2
    assert plan.stats.tasks == 3


def test_the_plan_finds_its_keys_in_a_text_by_their_digests(
    tmp_path: Path,
) -> None:
    path = tmp_path / "keys.csv"
    path.write_text(
        "stream_key,app_id,regions\n"
        "key-aaaa-0001,a,na\nkey-aaaa-0001,b,eu\nkey-bbbb-0002,a,na\nkey-aaaa-0001,a,eu\n"
    )
    opts = InputSettings(sources=(str(path),))
    plan = build_plan(open_sources(opts.sources, ()), opts)
    assert len(plan.keys) == 3  # one per distinct (app ID, key)
    text = "x key-bbbb-0002 key-aaaa-0001 key-cccc-0003"
    assert plan.keys.mask(text) == "x *** *** key-cccc-0003"


def test_plan_counts_per_app_and_region(tmp_path: Path) -> None:
    path = tmp_path / "keys.txt"
    path.write_text("k1\nk2\nk2\n")
    opts = InputSettings(sources=(str(path),), app_id="app1", regions=("na", "eu"))
    stats = build_plan(open_sources(opts.sources, ()), opts).stats
    assert stats.tasks == 4
    assert stats.duplicates == 1
    assert stats.per_app_region == {("app1", "na"): 2, ("app1", "eu"): 2}
    assert stats.to_dict()["sample"][0] == {"app_id": "app1", "region": "na", "key_hint": "***"}


def test_any_invalid_row_refuses_the_whole_plan(tmp_path: Path) -> None:
    with pytest.raises(InputErrors) as info:
        plan_for(tmp_path, "k1\nbad key\nk3\n")
    assert info.value.exit_code == 2
    assert "keys.txt:2: stream key contains whitespace" in str(info.value)


def test_skip_invalid_plans_the_valid_rows_and_reports_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "keys.txt"
    path.write_text("k1\nbad key\n")
    opts = InputSettings(sources=(str(path),), app_id="a", skip_invalid=True)
    plan = build_plan(open_sources(opts.sources, ()), opts)
    assert len(list(plan.tasks())) == 4
    assert [e.line for e in plan.stats.invalid] == [2]


def test_no_keys_at_all_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no stream keys"):
        plan_for(tmp_path, "# nothing\n")


def test_resume_skips_done_pairs(tmp_path: Path) -> None:
    path = tmp_path / "keys.txt"
    path.write_text("k1\nk2\n")
    opts = InputSettings(sources=(str(path),), app_id="a")
    done = {done_digest("a", "na", key_id("k1")), done_digest("a", "cn", key_id("k2"))}
    plan = build_plan(open_sources(opts.sources, ()), opts, done)
    tasks = list(plan.tasks())
    assert Task("a", "na", "k1") not in tasks
    assert Task("a", "cn", "k2") not in tasks
    assert len(tasks) == 6
    assert plan.stats.already_done == 2
    assert len(list(plan.tasks(include_done=True))) == 8


def test_shards_split_keys_disjointly_and_cover_all(tmp_path: Path) -> None:
    text = "".join(f"key-{i:04d}\n" for i in range(300))
    shards = [plan_for(tmp_path, text, shard=Shard(i, 3)) for i in range(3)]
    everything = plan_for(tmp_path, text)
    combined = [t for shard in shards for t in shard]
    assert sorted(combined, key=repr) == sorted(everything, key=repr)
    assert all(len(s) > 200 for s in shards)  # no shard empty or hoarding


def test_shard_of_is_stable_across_runs() -> None:
    # printf leaked-key | sha256sum -> 95d32460c05467e8...: the first 8 bytes mod N.
    assert [shard_of("leaked-key", n) for n in (1, 2, 3, 7)] == [0, 0, 2, 6]


@pytest.mark.parametrize("spec", ["3/3", "1", "a/b", "-1/2", "0/0"])
def test_bad_shard_specs_are_usage_errors(spec: str) -> None:
    with pytest.raises(UsageError):
        Shard.parse(spec)


def test_a_file_changed_after_validation_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "keys.txt"
    path.write_text("k1\nk2\n")
    opts = InputSettings(sources=(str(path),), app_id="a")
    plan = build_plan(open_sources(opts.sources, ()), opts)
    path.write_text("k1\n")
    assert len(list(plan.tasks())) == 4
    assert plan.changed is not None
    assert "1 validated rows are no longer there" in plan.changed


def test_a_key_replaced_by_one_of_the_same_length_is_not_sent_and_named(tmp_path: Path) -> None:
    path = tmp_path / "keys.txt"
    path.write_text("key-0001\nkey-0002\nkey-0003\n")
    opts = InputSettings(sources=(str(path),), app_id="a")
    plan = build_plan(open_sources(opts.sources, ()), opts)
    path.write_text("key-0001\nkey-9999\nkey-0003\n")  # same size, same row count
    tasks = list(plan.tasks())
    assert {t.key for t in tasks} == {"key-0001", "key-0003"}
    assert len(tasks) == 8
    assert plan.changed is not None
    assert f"1 rows differ from what was validated and were NOT sent: {path}:2" in plan.changed
    assert "key-9999" not in plan.changed


def test_a_row_changed_between_two_reads_of_one_run_is_named_too(tmp_path: Path) -> None:
    """The input is read more than once a run (keys in use first, then the rest):
    the message names what the last read found changed, not only the first."""
    path = tmp_path / "keys.txt"
    path.write_text("key-0001\nkey-0002\nkey-0003\n")
    opts = InputSettings(sources=(str(path),), app_id="a")
    plan = build_plan(open_sources(opts.sources, ()), opts)
    path.write_text("key-0001\nkey-9999\nkey-0003\n")
    list(plan.tasks())
    path.write_text("key-0001\nkey-9999\nkey-8888\n")
    assert {t.key for t in plan.tasks()} == {"key-0001"}
    assert plan.changed is not None
    assert f"2 rows differ from what was validated and were NOT sent: {path}:2, {path}:3" in (
        plan.changed
    )


def test_a_row_added_after_validation_is_not_sent(tmp_path: Path) -> None:
    path = tmp_path / "keys.csv"
    path.write_text("stream_key,regions\nk1,na\n")
    opts = InputSettings(sources=(str(path),), app_id="a")
    plan = build_plan(open_sources(opts.sources, ()), opts)
    path.write_text("stream_key,regions\nk1,na;eu\nk2,na\n")  # k1 gets a region, k2 is new
    assert list(plan.tasks()) == []
    assert plan.changed is not None
    assert f"{path}:2, {path}:3" in plan.changed


def test_an_unchanged_file_is_not_reported_as_changed(tmp_path: Path) -> None:
    path = tmp_path / "keys.txt"
    path.write_text("k1\nk2\n")
    opts = InputSettings(sources=(str(path),), app_id="a")
    plan = build_plan(open_sources(opts.sources, ()), opts)
    assert len(list(plan.tasks())) == 8
    assert plan.changed is None


def test_skip_invalid_with_no_valid_row_left_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="all 2 rows are invalid"):
        plan_for(tmp_path, "bad key\nworse key\n", skip_invalid=True)


def test_rows_outside_the_selected_regions_leave_nothing_to_do(tmp_path: Path) -> None:
    path = tmp_path / "keys.csv"
    path.write_text("stream_key,app_id,regions\nk1,a,na\n")
    opts = InputSettings(sources=(str(path),), regions=("cn",))
    with pytest.raises(UsageError, match="nothing to do"):
        build_plan(open_sources(opts.sources, ()), opts)


def test_a_key_is_planned_in_all_its_regions_before_the_next_key(tmp_path: Path) -> None:
    """Key-major order: after t seconds at 50 DELETE/s about t x 50 / 4 keys are fully gone."""
    path = tmp_path / "keys.csv"
    path.write_text("stream_key,regions\nk1,cn;na\nk2,\nk3,eu;ap;na\n")
    opts = InputSettings(sources=(str(path),), app_id="app1")
    tasks = list(build_plan(open_sources(opts.sources, ()), opts).tasks())
    assert [(t.key, t.region) for t in tasks] == [
        ("k1", "na"),
        ("k1", "cn"),
        *[("k2", r) for r in ("na", "eu", "ap", "cn")],
        ("k3", "na"),
        ("k3", "eu"),
        ("k3", "ap"),
    ]


def test_deletes_are_sent_in_plan_order_with_many_in_flight(tmp_path: Path) -> None:
    import httpx
    import respx

    from revoker.credentials import Credentials
    from revoker.engine.run import execute, prepare, revoke_passes
    from revoker.settings import ClientSettings, RunSettings
    from tests.conftest import mock_transport

    settings = RunSettings(
        inputs=InputSettings(keys=tuple(f"key-{i:03d}" for i in range(20)), app_id="app"),
        client=ClientSettings(base_url="https://agora.test", concurrency=16),
        # Paced, so every request books its slot in the order it was planned; slots 25 ms
        # apart keep that order even when a loaded machine wakes the sleepers late.
        max_rps=40,
        audit_log=tmp_path / "audit.jsonl",
    )
    plan = prepare(settings)
    sent: list[str] = []

    def record(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        return httpx.Response(200, json={"status": "success"})

    with respx.mock(base_url="https://agora.test") as api:
        api.delete(url__regex=".*").mock(side_effect=record)
        report = execute(
            "revoke",
            settings,
            plan,
            Credentials("cid", "sec"),
            revoke_passes(settings, plan),
            transport=mock_transport(),
            install_signal_handlers=False,
        )
    assert report.exit_code == 0
    keys = [path.rsplit("/", 1)[1] for path in sent]
    regions = [path.split("/")[1] for path in sent]
    assert keys == [f"key-{i:03d}" for i in range(20) for _ in range(4)]
    assert regions == ["na", "eu", "ap", "cn"] * 20


def test_a_counted_only_plan_counts_what_the_full_plan_sends_and_gives_no_tasks(
    tmp_path: Path,
) -> None:
    path = tmp_path / "keys.txt"
    path.write_text("k1\nk2\nk1\nk3\n")
    opts = InputSettings(sources=(str(path),), app_id="a")
    done = {done_digest("a", "na", key_id("k1"))}
    full = build_plan(open_sources(opts.sources, ()), opts, done)
    counted = build_plan(open_sources(opts.sources, ()), opts, done, keep_rows=False)
    tasks = list(full.tasks())
    assert counted.stats.tasks == full.stats.tasks == len(tasks) == 11
    assert counted.stats.per_app_region == full.stats.per_app_region
    assert counted.stats.per_app_region[("a", "na")] == sum(t.region == "na" for t in tasks)
    assert counted.stats.sample == full.stats.sample == tasks[: len(full.stats.sample)]
    assert counted.stats.already_done == 1
    with pytest.raises(RuntimeError):
        next(counted.tasks())
