from __future__ import annotations

from revoker.settings import RunSettings


def test_agora_published_limits_are_the_defaults_and_max_rps_overrides_both() -> None:
    assert RunSettings().rps_for("DELETE") == 50
    assert RunSettings().rps_for("GET") == 100
    assert RunSettings(max_rps=0).rps_for("GET") == 0


def test_shards_share_the_app_cap_unless_max_rps_is_given() -> None:
    from revoker.settings import InputSettings, Shard

    sharded = InputSettings(shard=Shard(1, 4))
    assert RunSettings(inputs=sharded).rps_for("DELETE") == 12.5
    assert RunSettings(inputs=sharded).rps_for("GET") == 25
    assert RunSettings(inputs=sharded, max_rps=30).rps_for("DELETE") == 30
    assert RunSettings(inputs=sharded, max_rps=0).rps_for("GET") == 0
    assert RunSettings(inputs=InputSettings(shard=Shard(0, 1))).rps_for("DELETE") == 50


def test_public_options_hold_no_secret_and_no_key() -> None:
    from revoker.settings import InputSettings

    options = RunSettings(inputs=InputSettings(keys=("leaked-key-123456",))).public_options()
    assert "leaked-key-123456" not in repr(options)
    assert options["keys_on_command_line"] == 1
