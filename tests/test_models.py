"""The one region-list syntax, shared by --regions, the CSV ``regions`` cell and the emulator."""

from __future__ import annotations

import pytest

from revoker.errors import UsageError
from revoker.models import parse_regions


def test_regions_are_normalised_to_lower_case_in_canonical_order() -> None:
    assert parse_regions("CN, na") == ("na", "cn")
    assert parse_regions("eu;ap") == ("eu", "ap")
    assert parse_regions(None) == ("na", "eu", "ap", "cn")


def test_an_unknown_region_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown region 'us'"):
        parse_regions("na,us")


@pytest.mark.parametrize("value", [",", " ; "])
def test_a_regions_option_naming_no_region_is_a_usage_error(value: str) -> None:
    with pytest.raises(UsageError, match="no region given"):
        parse_regions(value)


@pytest.mark.parametrize("value", ["na,eu", "na;eu", "NA|Eu", " eu ; na ", "eu,na,eu"])
def test_commas_semicolons_and_bars_all_separate_regions(value: str) -> None:
    assert parse_regions(value) == ("na", "eu")


def test_every_unknown_region_is_named() -> None:
    with pytest.raises(UsageError, match="unknown region 'mars', 'us'"):
        parse_regions("us;na;mars")
