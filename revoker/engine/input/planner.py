"""Turn key rows into tasks: key x region, deduplicated, sharded, resume-filtered.

Planning streams: the sources are read once to validate and count
(:func:`build_plan`), then again to yield tasks (:meth:`Plan.tasks`). Only a
16-byte digest per distinct (app ID, key) is held for deduplication (in a
:class:`~revoker.digestflags.DigestFlags`), and an 8-byte digest per row of what
was validated, so a row that changed in between is caught by its content and
never sent. The plan keeps an 8-byte digest per
distinct key (:class:`~revoker.redact.KeyDigests`), so what a server says to a
request that names no key (a listing) can still be redacted of the run's keys.
"""

from __future__ import annotations

import hashlib
from array import array
from collections import Counter
from collections.abc import Callable, Iterator

from revoker.digestflags import DigestFlags
from revoker.engine.input.sources import KeyRow, Source, iter_rows
from revoker.errors import InputError, InputErrors, UsageError
from revoker.models import REGIONS, Task, done_digest, key_id
from revoker.redact import KeyDigests
from revoker.results import PlanStats
from revoker.settings import InputSettings, Shard

MAX_ERRORS_SHOWN = 20
SAMPLE_SIZE = 5
_REGION_BIT = {region: 1 << i for i, region in enumerate(REGIONS)}
# The regions of each set of region bits, in REGIONS order.
_REGIONS_OF = tuple(
    tuple(region for region in REGIONS if bits & _REGION_BIT[region])
    for bits in range(1 << len(REGIONS))
)

# models.done_digest of the tasks already done, from an audit log.
DoneSet = set[int]


def shard_of(key: str, count: int) -> int:
    """Stable shard of a key: the same on every machine, every run, every Python."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


def row_digest(row: KeyRow | InputError) -> int:
    """A compact digest of one input row as read: where it is and everything it says."""
    if isinstance(row, InputError):
        text = f"!{row.source}\x00{row.line}\x00{row.reason}"
    else:
        regions = ",".join(row.regions)
        text = f"{row.source}\x00{row.line}\x00{row.app_id}\x00{regions}\x00{row.key}"
    digest = hashlib.blake2b(text.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class RowCheck:
    """Compares the rows read back with the digests of the rows validated, in order."""

    MAX_NAMED = 5

    def __init__(self, validated: array[int]) -> None:
        self._validated = validated
        self._index = 0
        self.changed = 0
        self.named: list[str] = []

    def __call__(self, row: KeyRow | InputError) -> bool:
        """Whether ``row`` is the row validated at its place (else it is not sent)."""
        index = self._index
        self._index += 1
        if index < len(self._validated) and self._validated[index] == row_digest(row):
            return True
        self.changed += 1
        if len(self.named) < self.MAX_NAMED:
            self.named.append(f"{row.source}:{row.line}")
        return False

    def report(self) -> str | None:
        """What changed, naming the file and line of each changed row (None if nothing)."""
        missing = len(self._validated) - self._index
        if not self.changed and missing <= 0:
            return None
        parts = []
        if self.changed:
            more = self.changed - len(self.named)
            parts.append(
                f"{self.changed} rows differ from what was validated and were NOT sent: "
                + ", ".join(self.named)
                + (f" and {more} more" if more > 0 else "")
            )
        if missing > 0:
            parts.append(f"{missing} validated rows are no longer there (NOT sent)")
        return "the input changed after it was validated: " + "; ".join(parts)


def _pair_digest(app_id: str, key: str) -> int:
    data = app_id.encode("utf-8") + b"\x00" + key.encode("utf-8")
    return int.from_bytes(hashlib.blake2b(data, digest_size=16).digest(), "big")


class Plan:
    """A validated plan whose tasks are produced lazily, as often as asked."""

    def __init__(
        self,
        sources: list[Source],
        settings: InputSettings,
        stats: PlanStats,
        done: DoneSet | None,
        rows: array[int] | None = None,
        keys: KeyDigests | None = None,
    ) -> None:
        self.sources = sources
        self.settings = settings
        self.stats = stats
        self.done = done
        # None: built to be counted only (build_plan's keep_rows).
        self.rows: array[int] | None = rows
        # Every key planned, to find it in what a server says.
        self.keys = keys if keys is not None else KeyDigests()
        self.changed: str | None = None

    def tasks(self, *, include_done: bool = False) -> Iterator[Task]:
        """Every task of the plan, in input order (resume-filtered unless include_done).

        The inputs are read again and each row is compared with the digest of the
        row validated at its place: a row that changed in between (a file edited
        during the run) is not sent, and ``self.changed`` names its file and line.
        """
        if self.rows is None:
            raise RuntimeError("a plan built without its row digests gives no tasks")
        done = None if include_done else self.done
        check = RowCheck(self.rows)
        for item in _iter_tasks(self.sources, self.settings, done, check=check):
            if isinstance(item, Task):
                yield item
        changed = check.report()
        if changed is not None:
            # The input is read more than once a run: the last read that found a
            # change saw every change made until then.
            self.changed = changed

    def region_counts(self, *, include_done: bool = False) -> Counter[str]:
        """Tasks per region that :meth:`tasks` yields, from the validation pass."""
        counts: Counter[str] = Counter()
        for (_, region), count in self.stats.per_app_region.items():
            counts[region] += count
        if include_done:
            counts.update(self.stats.already_done_per_region)
        return counts

    def done_pair(self, task: Task) -> bool:
        """Whether ``task`` was done in an earlier run (``--resume``)."""
        done = self.done
        return done is not None and done_digest(task.app_id, task.region, task.key_id) in done

    def done_tasks(self) -> Iterator[Task]:
        """The tasks ``--resume`` skips (done in an earlier run), in input order."""
        if not self.done or not self.stats.already_done:
            return
        yield from filter(self.done_pair, self.tasks(include_done=True))

    def close(self) -> None:
        for source in self.sources:
            source.close()


RowHook = Callable[[KeyRow | InputError, str, list[str]], None]


def _iter_tasks(
    sources: list[Source],
    settings: InputSettings,
    done: DoneSet | None,
    on_row: RowHook | None = None,
    on_end: Callable[[DigestFlags], None] | None = None,
    check: Callable[[KeyRow | InputError], bool] | None = None,
    on_planned: Callable[[KeyRow, int], None] | None = None,
) -> Iterator[Task | InputError]:
    """Core loop shared by both passes.

    ``check(row)`` sees every row first; a row it refuses is skipped whole.
    ``on_row(row, status, regions_done)`` sees every row; status is one of
    ``invalid``, ``out_of_shard``, ``duplicate``, ``new`` or ``more_regions``.
    ``on_end`` is given, after the last row, each distinct key's region bits.
    ``on_planned(row, bits)``: the row's planned regions as bits instead of a Task per
    region (the validation pass only counts them; a Task per pair is its main cost).
    """
    seen = DigestFlags(bits=128)
    wanted = 0
    for region in settings.regions:
        wanted |= _REGION_BIT[region]
    shard: Shard | None = settings.shard
    for row in iter_rows(sources, settings.app_id, allow_non_ascii=settings.allow_non_ascii_keys):
        if check is not None and not check(row):
            continue
        if isinstance(row, InputError):
            if on_row:
                on_row(row, "invalid", [])
            yield row
            continue
        if shard is not None and shard_of(row.key, shard.count) != shard.index:
            if on_row:
                on_row(row, "out_of_shard", [])
            continue
        mask = 0
        for region in row.regions:
            mask |= _REGION_BIT[region]
        mask &= wanted
        digest = _pair_digest(row.app_id, row.key)
        known = seen.update(digest, mask)
        previous = known or 0
        new = mask & ~previous
        skipped: list[str] = []
        planned = new
        if done and new:
            kid = key_id(row.key)
            for region in _REGIONS_OF[new]:
                if done_digest(row.app_id, region, kid) in done:
                    skipped.append(region)
                    planned &= ~_REGION_BIT[region]
        if on_planned is not None:
            if planned:
                on_planned(row, planned)
        else:
            for region in _REGIONS_OF[planned]:
                yield Task(row.app_id, region, row.key)
        if on_row:
            status = "new" if not previous else "more_regions" if new else "duplicate"
            on_row(row, status, skipped)
    if on_end:
        on_end(seen)


def build_plan(
    sources: list[Source],
    settings: InputSettings,
    done: DoneSet | None = None,
    *,
    keep_keys: bool = True,
    keep_rows: bool = True,
) -> Plan:
    """Validate every row and count the plan. Raises InputErrors unless skip_invalid.

    ``keep_keys``: keep a digest of each key (:attr:`Plan.keys`); a run that sends no
    request naming no key (a dry run, verify) has no use for them. ``keep_rows``:
    keep a digest of each row, which :meth:`Plan.tasks` checks the input against; a
    plan without them (a dry run, which only counts) cannot give its tasks.
    """
    stats = PlanStats()
    rows: array[int] = array("q")
    keys = KeyDigests()

    def validated(row: KeyRow | InputError) -> bool:
        rows.append(row_digest(row))
        return True

    def on_row(row: KeyRow | InputError, status: str, skipped: list[str]) -> None:
        if isinstance(row, InputError):
            stats.invalid_count += 1
            if len(stats.invalid) < MAX_ERRORS_SHOWN:
                stats.invalid.append(row)
            return
        stats.rows += 1
        if keep_keys and status == "new":
            keys.add(row.key)
        if skipped:
            stats.already_done += len(skipped)
            stats.already_done_per_region.update(skipped)
        if status == "out_of_shard":
            stats.out_of_shard += 1
        elif status == "duplicate":
            stats.duplicates += 1
        elif status == "new":
            stats.keys += 1

    def on_end(seen: DigestFlags) -> None:
        wanted = sum(_REGION_BIT[region] for region in settings.regions)
        stats.partial_keys = sum(1 for mask in seen.values() if mask and mask != wanted)

    # Rows counted by (app ID, region bits): one count per row, not one per pair.
    per_app_bits: Counter[tuple[str, int]] = Counter()

    def on_planned(row: KeyRow, bits: int) -> None:
        per_app_bits[(row.app_id, bits)] += 1
        room = SAMPLE_SIZE - len(stats.sample)
        if room > 0:
            stats.sample.extend(Task(row.app_id, r, row.key) for r in _REGIONS_OF[bits][:room])

    check = validated if keep_rows else None
    for _ in _iter_tasks(
        sources, settings, done, on_row, on_end, check=check, on_planned=on_planned
    ):
        pass  # only InputErrors come out: on_row has counted them
    for (app_id, bits), count in per_app_bits.items():
        stats.tasks += count * len(_REGIONS_OF[bits])
        for region in _REGIONS_OF[bits]:
            stats.per_app_region[(app_id, region)] += count
    if stats.invalid_count and not settings.skip_invalid:
        raise InputErrors(stats.invalid, stats.invalid_count - len(stats.invalid))
    if not stats.rows:
        if stats.invalid_count:
            raise UsageError(f"no valid stream key: all {stats.invalid_count} rows are invalid")
        left_out = sorted(set().union(*(source.rules_left_out for source in sources)))
        if settings.rules and left_out:
            raise UsageError(
                f"no finding of --rule {', '.join(settings.rules)} in the report: its "
                f"findings are of {', '.join(left_out)}"
            )
        raise UsageError("no stream keys given: pass files, '-' for stdin, or --key")
    if not (stats.tasks or stats.already_done or stats.out_of_shard):
        raise UsageError("nothing to do: no key is planned in the selected regions")
    return Plan(sources, settings, stats, done, rows if keep_rows else None, keys)
