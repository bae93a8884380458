"""A compact map from a key's digest to a few flag bits, for per-key bookkeeping.

A run that plans a million keys holds a little state for each of them (the regions
it planned, what the API answered). A ``dict[int, int]`` costs about a hundred bytes
per entry (the digest as a Python int, the entry, the spare room); :class:`DigestFlags`
keeps the digests in arrays of machine words and the flags in an array of 16-bit
integers, open-addressed, so an entry costs a few tens of bytes.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator

_WORD = (1 << 64) - 1
_USED = 1 << 15  # set on every slot in use: flags of 0 are a key that is there
_FLAGS = _USED - 1
_FIRST_SIZE = 1 << 10


class DigestFlags:
    """Digest (an unsigned ``bits``-bit integer, 64 or 128) to flags (0 to 32767).

    Digests are taken to be uniformly spread (a hash's output): the slot is read
    from the digest's low bits as they are. Entries are never removed.
    """

    def __init__(self, bits: int = 64) -> None:
        if bits not in (64, 128):
            raise ValueError(f"bits must be 64 or 128, not {bits}")
        self._wide = bits == 128
        self._count = 0
        self._alloc(_FIRST_SIZE)

    def _alloc(self, size: int) -> None:
        self._mask = size - 1
        self._limit = size * 2 // 3  # grown past this load, as Python's own dicts are
        self._low: array[int] = array("Q", bytes(8 * size))
        self._high: array[int] = array("Q", bytes(8 * size)) if self._wide else array("Q")
        self._flags: array[int] = array("H", bytes(2 * size))

    def __len__(self) -> int:
        return self._count

    def _slot(self, digest: int) -> int:
        """The slot that holds ``digest``, or the free slot where it would go."""
        low, flags, mask = self._low, self._flags, self._mask
        word = digest & _WORD
        at = word & mask
        if self._wide:
            high, top = self._high, digest >> 64
            while flags[at] and (low[at] != word or high[at] != top):
                at = (at + 1) & mask
        else:
            while flags[at] and low[at] != word:
                at = (at + 1) & mask
        return at

    def get(self, digest: int, default: int = 0) -> int:
        """The flags of ``digest``, or ``default`` if it was never set."""
        state = self._flags[self._slot(digest)]
        return state & _FLAGS if state else default

    def __contains__(self, digest: object) -> bool:
        return isinstance(digest, int) and bool(self._flags[self._slot(digest)])

    def update(self, digest: int, bits: int) -> int | None:
        """OR ``bits`` into the flags of ``digest`` (a new digest starts at 0); returns
        the flags before, or None if the digest is new."""
        if not 0 <= bits <= _FLAGS:
            raise ValueError(f"flags must be in 0..{_FLAGS}, not {bits}")
        at = self._slot(digest)
        state = self._flags[at]
        if state:
            self._flags[at] = state | bits
            return state & _FLAGS
        self._low[at] = digest & _WORD
        if self._wide:
            self._high[at] = digest >> 64
        self._flags[at] = _USED | bits
        self._count += 1
        if self._count > self._limit:
            self._grow()
        return None

    def _grow(self) -> None:
        old_low, old_high, old_flags = self._low, self._high, self._flags
        self._alloc((self._mask + 1) * 2)
        low, high, flags, mask, wide = self._low, self._high, self._flags, self._mask, self._wide
        for slot, state in enumerate(old_flags):
            if state:
                word = old_low[slot]
                at = word & mask
                while flags[at]:
                    at = (at + 1) & mask
                low[at] = word
                if wide:
                    high[at] = old_high[slot]
                flags[at] = state

    def items(self) -> Iterator[tuple[int, int]]:
        """Every (digest, flags), in no particular order."""
        low, high, wide = self._low, self._high, self._wide
        for at, state in enumerate(self._flags):
            if state:
                top = high[at] if wide else 0
                yield (top << 64) | low[at], state & _FLAGS

    def values(self) -> Iterator[int]:
        """The flags of every digest, in no particular order."""
        for state in self._flags:
            if state:
                yield state & _FLAGS
