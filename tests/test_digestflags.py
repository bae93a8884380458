"""The compact digest-to-flags map behind per-key bookkeeping."""

from __future__ import annotations

import random

import pytest

from revoker.digestflags import DigestFlags


def test_a_new_digest_reports_none_and_a_known_one_its_flags_before() -> None:
    flags = DigestFlags()
    assert flags.update(12345, 1) is None
    assert flags.update(12345, 4) == 1
    assert flags.get(12345) == 5
    assert len(flags) == 1


def test_an_unknown_digest_reads_as_the_default_and_is_not_contained() -> None:
    flags = DigestFlags()
    flags.update(7, 0)
    assert 7 in flags  # flags of 0 are still a key that is there
    assert flags.get(7, default=-1) == 0
    assert 8 not in flags
    assert flags.get(8, default=-1) == -1


def test_every_entry_survives_the_table_growing() -> None:
    rng = random.Random(1)
    digests = {rng.getrandbits(64): rng.randrange(1, 256) for _ in range(20_000)}
    table = DigestFlags()
    for digest, bits in digests.items():
        table.update(digest, bits)
    assert len(table) == len(digests)
    assert dict(table.items()) == digests
    assert sorted(table.values()) == sorted(digests.values())


def test_wide_digests_that_share_their_low_word_stay_apart() -> None:
    table = DigestFlags(bits=128)
    low = 0xDEADBEEF
    table.update((1 << 64) | low, 1)
    table.update((2 << 64) | low, 2)
    assert table.get((1 << 64) | low) == 1
    assert table.get((2 << 64) | low) == 2
    assert low not in table
    assert dict(table.items()) == {(1 << 64) | low: 1, (2 << 64) | low: 2}


def test_flags_out_of_range_and_other_widths_are_refused() -> None:
    with pytest.raises(ValueError, match="flags must be in"):
        DigestFlags().update(1, 1 << 15)
    with pytest.raises(ValueError, match="bits must be 64 or 128"):
        DigestFlags(bits=32)
