"""The event-log fold over customer partitions, on all cores or on a Dask cluster, and state snapshots.

A customer's state depends only on that customer's events, in time order
(``domain.features.apply``, the one place the feature rules live), so the fold splits by
customer: ``shard_of(customer_id, shards)`` (CRC-32 of the UTF-8 id, mod ``shards``; stable
across processes and machines) names each customer's shard, a log is cut into shards in one
parallel pass (``partition_log``: byte ranges of the file, each range's lines appended to its
shard files in file order, so each customer's events stay in time order), every shard is folded
on its own by ``fold_shard`` (the partition function: the same ``recommender.matrix.fold_event_log``
as the serial fold), and the shard results are merged (``merge_folds``). The states are exactly
the serial fold's, for any number of shards and workers.

States cross process boundaries pickled, one ``bytes`` per state, and stay packed in the
parent (``PackedStates``: a read-only mapping that unpickles a state when it is read): at
1,000,000 customers x 3 cutoffs they take ~2.5 GB instead of ~18 GB of live objects.

A snapshot (``write_snapshot`` / ``nbo snapshot``) is the states as of a time ``at`` (every
event strictly before it folded in) and each customer's purchases before it, in a directory:
``manifest.json`` (time, shard count and function, feature half-lives, events folded, the newest
event time per ``source`` and per ``type``) and one ``part-NNNNN.jsonl`` per shard, a line per
customer: ``{"state": CustomerState.to_dict(), "purchases": [[product_id, at_s], ...]}``.
``PartitionedLog(events, snapshot=dir)`` folds on from it: the snapshot's states and
purchases plus the log's events from ``at`` on give the same states as folding the whole log.

Times are UTC epoch seconds.
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import operator
import pickle
import shutil
import sys
import tempfile
import time
import weakref
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from dataclasses import field as _field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Protocol, Sequence

import numpy as np
import orjson

from domain.features import FeatureParams
from domain.state import CustomerState
from recommender.evaluation import HistoryScan, scan_history
from recommender.matrix import FoldedLog, Purchase, fold_event_log, gc_paused, iso_epoch_s, read_lines
from schemas.rules import DEFAULT_RULES, ContractRules

SNAPSHOT_FORMAT = "nbo-state-snapshot"
SNAPSHOT_VERSION = 1
SHARD_FUNCTION = "crc32(customer_id as UTF-8) mod shards"
#: Bytes of log per shard when the shard count is not given: bounds each worker's live states.
SHARD_BYTES = 512 * 1024 * 1024
_CUSTOMER_KEY = b'"customer_id":"'
_TIME_KEY = b'"occurred_at":"'
_TYPE_KEY = b'"type":"'
_STATE_FIELDS = tuple(CustomerState.__dataclass_fields__)
_STATE_VALUES = operator.attrgetter(*_STATE_FIELDS)
_new_state = object.__new__


def shard_of(customer_id: str | bytes, shards: int) -> int:
    """The shard (0 .. shards - 1) of a customer; the same in every process and on every machine."""
    raw = customer_id.encode() if isinstance(customer_id, str) else customer_id
    return zlib.crc32(raw) % shards


class PackedStates(Mapping[str, CustomerState]):
    """Customer id -> state, each state kept pickled and unpickled when read (a new, equal
    value on every read: states are values, nothing is written back)."""

    __slots__ = ("_packed",)

    def __init__(self, packed: dict[str, bytes]) -> None:
        self._packed = packed

    @classmethod
    def pack(cls, states: Mapping[str, CustomerState], memo: dict[int, bytes] | None = None) -> "PackedStates":
        """``memo`` (id of a state -> its bytes) shares the bytes of a state that several cutoffs hold."""
        memo = {} if memo is None else memo
        packed = {}
        dumps, values = pickle.dumps, _STATE_VALUES
        for cid, state in states.items():
            blob = memo.get(id(state))
            if blob is None:  # the field values only: the names would be a third of the bytes
                blob = memo[id(state)] = dumps(values(state), protocol=pickle.HIGHEST_PROTOCOL)
            packed[cid] = blob
        return cls(packed)

    def __getitem__(self, customer_id: str) -> CustomerState:
        state = _new_state(CustomerState)
        state.__dict__.update(zip(_STATE_FIELDS, pickle.loads(self._packed[customer_id])))
        return state

    def __contains__(self, customer_id: object) -> bool:
        return customer_id in self._packed

    def __iter__(self) -> Iterator[str]:
        return iter(self._packed)

    def __len__(self) -> int:
        return len(self._packed)

    @classmethod
    def merge(cls, parts: Iterable["PackedStates"]) -> "PackedStates":
        """One mapping of disjoint parts, in customer id order."""
        merged: dict[str, bytes] = {}
        for part in parts:
            merged.update(part._packed)
        return cls({cid: merged[cid] for cid in sorted(merged)})


# -- partitioning ---------------------------------------------------------------------------


def byte_ranges(path: Path, parts: int) -> list[tuple[int, int]]:
    """``parts`` (at most) byte ranges ``[start, end)`` of a file, each starting at a line start."""
    size = path.stat().st_size
    cuts = [0]
    with open(path, "rb") as handle:
        for i in range(1, parts):
            handle.seek(max(cuts[-1], size * i // parts))
            if handle.tell() > 0:
                handle.readline()  # to the start of the next line
            cuts.append(min(handle.tell(), size))
    cuts.append(size)
    return [(a, b) for a, b in zip(cuts, cuts[1:]) if b > a]


@dataclass
class RangeScan:
    """What cutting one byte range saw of the log's times (``recommender.evaluation.HistoryScan``
    of the whole log is these merged): events, first and last event time, purchase times."""

    events: int = 0
    first_s: float = float("inf")
    last_s: float = float("-inf")
    purchase_times_s: list[float] | None = None


def _customer_of(line: bytes) -> bytes:
    """The customer id of one event line (UTF-8): found in the bytes when the line is written as
    this system writes JSON (no spaces), else from the decoded object."""
    i = line.find(_CUSTOMER_KEY)
    if i < 0:
        return str(orjson.loads(line)["customer_id"]).encode()
    i += len(_CUSTOMER_KEY)
    return line[i: line.index(b'"', i)]


def _line_time(line: bytes) -> tuple[float, bool]:
    """(occurred_at as UTC epoch s, is a purchase) of one event line, as ``scan_history`` reads
    them: found in the bytes when the line is written as this system writes JSON (no spaces),
    else from the decoded object."""
    i = line.find(_TIME_KEY)
    j = line.find(_TYPE_KEY)
    if i < 0 or j < 0:
        head = orjson.loads(line)
        return iso_epoch_s(head["occurred_at"]), head.get("type") == "purchase"
    i += len(_TIME_KEY)
    text = line[i: line.index(b'"', i)].decode()
    j += len(_TYPE_KEY)
    return iso_epoch_s(text), line.startswith(b'purchase"', j)


def partition_range(path: Path, start: int, end: int, shards: int, out_dir: Path,
                    tag: int) -> tuple[list[Path], RangeScan]:
    """Append the lines of ``path[start:end)`` to ``out_dir/shard-SSSSS.range-TTTTT.jsonl`` by
    customer shard, in file order; returns the shard files (index = shard) and the range's
    times (``RangeScan``: read in the same pass, so that choosing the label windows costs no
    second read of the log)."""
    outs = [out_dir / f"shard-{s:05d}.range-{tag:05d}.jsonl" for s in range(shards)]
    buffers: list[list[bytes]] = [[] for _ in range(shards)]
    sizes = [0] * shards
    handles = [open(p, "wb") for p in outs]
    crc, customer_of, line_time = zlib.crc32, _customer_of, _line_time
    events, first, last = 0, float("inf"), float("-inf")
    bought: list[float] = []
    try:
        with open(path, "rb") as handle:
            handle.seek(start)
            remaining = end - start
            while remaining > 0:
                block = handle.read(min(remaining, 16 * 1024 * 1024))
                if not block:
                    break
                remaining -= len(block)
                if remaining > 0 and not block.endswith(b"\n"):
                    tail = handle.readline()  # finish the last line (a range ends at a line start)
                    remaining -= len(tail)
                    block += tail
                for line in block.splitlines(keepends=True):
                    if not line.strip():
                        continue
                    s = crc(customer_of(line)) % shards
                    at_s, purchase = line_time(line)
                    events += 1
                    if at_s < first:
                        first = at_s
                    if at_s > last:
                        last = at_s
                    if purchase:
                        bought.append(at_s)
                    if not line.endswith(b"\n"):
                        line += b"\n"
                    buffers[s].append(line)
                    sizes[s] += len(line)
                    if sizes[s] > 4 * 1024 * 1024:
                        handles[s].writelines(buffers[s])
                        buffers[s], sizes[s] = [], 0
        for s in range(shards):
            handles[s].writelines(buffers[s])
    finally:
        for h in handles:
            h.close()
    return outs, RangeScan(events, first, last, bought)


def partition_log(path: Path, shards: int, out_dir: Path, pool: ProcessPoolExecutor | None = None,
                  ranges: int = 1, scans: list[RangeScan] | None = None) -> list[list[Path]]:
    """Cut a JSONL log into ``shards`` by customer, reading ``ranges`` byte ranges in parallel
    on ``pool``; returns, per shard, its files in file order (read them one after the other).
    ``scans``, when given, receives each range's ``RangeScan`` (in file order)."""
    spans = byte_ranges(path, max(1, ranges))
    if pool is None or len(spans) == 1:
        per_range = [partition_range(path, a, b, shards, out_dir, t) for t, (a, b) in enumerate(spans)]
    else:
        futures = [pool.submit(partition_range, path, a, b, shards, out_dir, t) for t, (a, b) in enumerate(spans)]
        per_range = [f.result() for f in futures]
    if scans is not None:
        scans.extend(scan for _, scan in per_range)
    return [[files[s] for files, _ in per_range] for s in range(shards)]


class ShardedLog(Protocol):
    """A log already cut by customer with ``shard_of`` (e.g. the training store's buckets,
    ``adapters.history_partitions.StorePartitions``); picklable, to be opened in each worker."""

    @property
    def shards(self) -> int: ...

    def lines(self, shard: int) -> Iterable[bytes]: ...


def shard_lines(paths: Sequence[Path] | ShardedLog, shard: int = 0) -> Iterator[bytes]:
    """A shard's lines: its files one after the other, or shard ``shard`` of a ``ShardedLog``."""
    if hasattr(paths, "lines"):
        yield from paths.lines(shard)  # type: ignore[union-attr]
        return
    for path in paths:  # type: ignore[union-attr]
        yield from read_lines(path)


def by_customer(lines: Iterable[bytes]) -> Iterator[bytes]:
    """The lines grouped by customer (customers in the order they first appear, each customer's
    lines in their order): the same states from ``fold_event_log`` (a state depends only on its
    own customer's events, in order), in about 30 % less time for a log in time order, where
    every customer's events lie far apart and each state goes cold between them."""
    groups: dict[bytes, list[bytes]] = {}
    customer_of = _customer_of
    for line in lines:
        cid = customer_of(line)
        group = groups.get(cid)
        if group is None:
            groups[cid] = [line]
        else:
            group.append(line)
    for group in groups.values():
        yield from group


# -- the partition function -------------------------------------------------------------------


@dataclass
class ShardFold:
    """One shard's fold: what ``merge_folds`` combines (picklable, compact)."""

    cutoffs_s: tuple[float, ...]
    states: list[PackedStates]
    purchases: list[Purchase]
    events: int
    last_event_s: float
    skipped: int


def fold_shard(paths: Sequence[Path] | ShardedLog, cutoffs_s: Sequence[float], params: FeatureParams = FeatureParams(),
               validate: bool = True, snapshot: Path | None = None, shard: int = 0, shards: int = 1,
               rules: ContractRules = DEFAULT_RULES) -> ShardFold:
    """Fold one shard's log files (in order) into states at each cutoff, starting from the
    shard's states in ``snapshot`` if given. The partition function of the process pool and
    of the Dask run; ``fold_event_log`` does the work."""
    initial, bought, since_s = (None, (), None)
    if snapshot is not None:
        initial, bought, since_s = read_snapshot_shard(snapshot, shard, shards)
    lines: Iterable[bytes] = shard_lines(paths, shard)
    if not hasattr(paths, "lines"):  # cut from a log in time order: each customer's events apart
        lines = by_customer(lines)
    folded = fold_event_log(lines, cutoffs_s, params, rules, validate=validate, initial=initial,
                            initial_purchases=bought, since_s=since_s)
    memo: dict[int, bytes] = {}
    with gc_paused():
        packed = [PackedStates.pack(s, memo) for s in folded.states]
    return ShardFold(folded.cutoffs_s, packed, folded.purchases, folded.events, folded.last_event_s, folded.skipped)


def merge_folds(parts: Sequence[ShardFold]) -> FoldedLog:
    """The fold of the whole log from its shards' folds (disjoint customers, same cutoffs)."""
    if not parts:
        raise ValueError("no shard to merge")
    cutoffs = parts[0].cutoffs_s
    states = [PackedStates.merge(p.states[k] for p in parts) for k in range(len(cutoffs))]
    purchases = [x for p in parts for x in p.purchases]
    return FoldedLog(cutoffs, list(states), purchases, sum(p.events for p in parts),
                     max(p.last_event_s for p in parts), sum(p.skipped for p in parts))


def default_shards(path: Path, workers: int) -> int:
    """At least one shard per worker and one per ``SHARD_BYTES`` of log, a multiple of ``workers``."""
    per_size = -(-path.stat().st_size // SHARD_BYTES)
    return max(workers, -(-per_size // workers) * workers)


def _pool(workers: int) -> ProcessPoolExecutor:
    # spawn, not fork: the caller may hold threads (BLAS, a server) that a fork would copy mid-state.
    # The cyclic collector stays off in the fold processes: a fold's states and events hold no
    # cycles (freed by reference counting), and turning it back on after a shard made it walk
    # every object the shard had allocated (about 10 % of a shard's fold).
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=gc.disable)


@dataclass
class PartitionedLog:
    """A JSONL event log (or a ``ShardedLog``) to fold over customer partitions: pass it to
    ``recommender.evaluation.fold_for_training`` instead of its lines.

    ``workers``: processes (1 = the serial fold in this process); ``shards``: customer
    partitions (default ``default_shards``); ``validate=False`` for a log this system wrote
    (``schemas.codec.decode_trusted``); ``snapshot``: a ``write_snapshot`` directory to start
    from (events before its time are skipped: they are in it); ``work_dir``: where the shard
    files go (default a temporary directory, removed after the fold)."""

    path: Path | ShardedLog
    workers: int = 1
    shards: int | None = None
    validate: bool = True
    snapshot: Path | None = None
    work_dir: Path | None = None
    #: the bank's contract rules the events are decoded under (``bootstrap.contract_rules``)
    rules: ContractRules = DEFAULT_RULES
    #: seconds of each phase of the last fold (partition, fold, merge)
    timings: dict[str, float] | None = None
    #: the log cut into shard files by ``scan`` (or the fold), until the fold has read them
    _cut: tuple[Path, list[list[Path]], HistoryScan, float] | None = _field(default=None, init=False, repr=False)
    _cleanup: Any = _field(default=None, init=False, repr=False)

    def __iter__(self) -> Iterator[bytes]:
        if isinstance(self.path, Path):
            return read_lines(self.path)
        return (line for s in range(self.path.shards) for line in self.path.lines(s))

    def fold(self, cutoffs_s: Sequence[float], params: FeatureParams = FeatureParams()) -> FoldedLog:
        """The fold of the log (from the snapshot, if any) at ``cutoffs_s``; ``events`` and
        ``last_event_s`` count the snapshot's events too."""
        folded = self._fold(cutoffs_s, params)
        if self.snapshot is not None:
            manifest = read_manifest(self.snapshot)
            folded.events += manifest["events_folded"]
            folded.last_event_s = max(folded.last_event_s, manifest["newest_event_s"])
        return folded

    def scan(self) -> HistoryScan:
        """The log's times (``recommender.evaluation.scan_history``), read before the fold to
        choose its cutoffs. A JSONL log folded on several workers is cut into its customer
        partitions here, in the same parallel pass (the fold then reads the cut files, no second
        read of the log); otherwise the log's lines are read once for it."""
        if self._parallel() and isinstance(self.path, Path):
            if self._cut is None:
                self._cut = self._partition()
            return self._cut[2]
        return scan_history(iter(self))

    def _parallel(self) -> bool:
        return self.workers > 1 or bool(self.shards)

    def _partition(self) -> tuple[Path, list[list[Path]], HistoryScan, float]:
        """Cut the JSONL log into shard files in a temporary directory (removed after the fold,
        or when this object goes): (directory, files per shard, the log's times, seconds)."""
        t0 = time.perf_counter()
        shards = self.shards or default_shards(self.path, self.workers)  # type: ignore[arg-type]
        tmp = Path(tempfile.mkdtemp(prefix="nbo-fold-", dir=self.work_dir))
        self._cleanup = weakref.finalize(self, shutil.rmtree, tmp, True)
        scans: list[RangeScan] = []
        with _pool(self.workers) as pool:
            files = partition_log(self.path, shards, tmp, pool, ranges=self.workers, scans=scans)  # type: ignore[arg-type]
        events = sum(r.events for r in scans)
        if not events:
            raise ValueError("the event log is empty")
        bought = np.sort(np.asarray([t for r in scans for t in r.purchase_times_s or ()], dtype=np.float64))
        scan = HistoryScan(min(r.first_s for r in scans), max(r.last_s for r in scans), bought, events)
        return tmp, files, scan, time.perf_counter() - t0

    def _fold(self, cutoffs_s: Sequence[float], params: FeatureParams) -> FoldedLog:
        t0 = time.perf_counter()
        if not self._parallel():
            initial, bought, since_s = (None, (), None)
            if self.snapshot is not None:
                check_snapshot(self.snapshot, params)
                initial, bought, since_s = read_snapshot_shard(self.snapshot, 0, 1)
            folded = fold_event_log(iter(self), cutoffs_s, params, self.rules, validate=self.validate,
                                    initial=initial, initial_purchases=bought, since_s=since_s)
            self.timings = {"partition_s": 0.0, "fold_s": round(time.perf_counter() - t0, 2), "merge_s": 0.0}
            return folded
        if self.snapshot is not None:
            check_snapshot(self.snapshot, params)
        files: list[Any]
        if not isinstance(self.path, Path):  # already by customer: each shard is read where it is folded
            shards, files, partition_s = self.path.shards, [self.path] * self.path.shards, 0.0
        else:
            if self._cut is None:
                self._cut = self._partition()
            _, files, _, partition_s = self._cut
            shards = len(files)
        try:
            t1 = time.perf_counter()
            with _pool(self.workers) as pool:
                futures = [pool.submit(fold_shard, files[s], tuple(cutoffs_s), params, self.validate, self.snapshot,
                                       s, shards, self.rules) for s in range(shards)]
                parts = [f.result() for f in futures]
            t2 = time.perf_counter()
            folded = merge_folds(parts)
            self.timings = {"partition_s": round(partition_s, 2), "fold_s": round(t2 - t1, 2),
                            "merge_s": round(time.perf_counter() - t2, 2)}
            return folded
        finally:
            if self._cut is not None:  # the shard files are read once
                self._cut = None
                self._cleanup()


# -- Dask -----------------------------------------------------------------------------------


def fold_on_dask(client: Any, shard_files: Sequence[Sequence[str | Path]], cutoffs_s: Sequence[float],
                 params: FeatureParams = FeatureParams(), validate: bool = True,
                 snapshot: str | Path | None = None, rules: ContractRules = DEFAULT_RULES) -> FoldedLog:
    """Fold shards on a Dask cluster (``client``: a ``dask.distributed.Client``): one task per
    shard running ``fold_shard`` on the workers (the files must be readable there: a shared
    file system or object store mount), gathered and merged here. ``shard_files[s]`` lists
    shard ``s``'s files in order (``partition_log``, or a log already written by customer
    partition with ``shard_of``)."""
    shards = len(shard_files)
    futures = [client.submit(fold_shard, [Path(p) for p in files], tuple(cutoffs_s), params, validate,
                             Path(snapshot) if snapshot is not None else None, s, shards, rules, pure=False)
               for s, files in enumerate(shard_files)]
    return merge_folds(client.gather(futures))


# -- snapshots ------------------------------------------------------------------------------


def _snapshot_line(state: CustomerState, bought: Sequence[Purchase]) -> bytes:
    # orjson writes a dataclass as its fields, as ``to_dict`` (asdict) gives them
    return orjson.dumps({"state": state, "purchases": [[p.product_id, p.at_s] for p in bought]})


def snapshot_shard(paths: Sequence[Path] | ShardedLog, at_s: float, out: Path, params: FeatureParams = FeatureParams(),
                   validate: bool = True, since: Path | None = None, shard: int = 0,
                   shards: int = 1, rules: ContractRules = DEFAULT_RULES) -> dict[str, Any]:
    """Fold one shard's files (from the shard of snapshot ``since``, if given) to ``at_s`` and
    write its snapshot part to ``out``; returns its counts and newest event times."""
    newest: dict[str, dict[str, float]] = {"source": {}, "type": {}}
    initial, bought, since_s = (None, (), None)
    if since is not None:
        initial, bought, since_s = read_snapshot_shard(since, shard, shards)
    floor_s = since_s if since_s is not None else float("-inf")
    counted = [0]

    def watched(lines: Iterable[bytes]) -> Iterator[bytes]:
        for raw in lines:
            head = orjson.loads(raw)
            at = iso_epoch_s(head["occurred_at"])
            if floor_s <= at < at_s:
                counted[0] += 1
                for field in ("source", "type"):
                    seen, name = newest[field], str(head.get(field, ""))
                    if at > seen.get(name, float("-inf")):
                        seen[name] = at
            yield raw

    folded = fold_event_log(watched(shard_lines(paths, shard)), [at_s], params, rules, validate=validate, initial=initial,
                            initial_purchases=bought, since_s=since_s)
    by_customer: dict[str, list[Purchase]] = {}
    for p in folded.purchases:
        if p.at_s < at_s:
            by_customer.setdefault(p.customer_id, []).append(p)
    states = folded.states[0]
    with gc_paused(), open(out, "wb") as handle:
        for cid in sorted(states):
            handle.write(_snapshot_line(states[cid], by_customer.get(cid, ())) + b"\n")
    return {"customers": len(states), "events": counted[0], "skipped": folded.skipped,
            "purchases": sum(len(v) for v in by_customer.values()),
            "newest_s": max(newest["type"].values(), default=0.0),
            "newest_by_source": newest["source"], "newest_by_type": newest["type"]}


def write_snapshot(events: Path | ShardedLog, at_s: float, out_dir: Path, params: FeatureParams = FeatureParams(),
                   workers: int = 1, shards: int | None = None, validate: bool = True,
                   since: Path | None = None, work_dir: Path | None = None,
                   rules: ContractRules = DEFAULT_RULES) -> dict[str, Any]:
    """Write the states as of ``at_s`` (every event of ``events`` strictly before it; from
    snapshot ``since`` on if given) to ``out_dir``; returns the manifest."""
    if since is not None:
        check_snapshot(since, params)
    presplit = not isinstance(events, Path)
    if presplit:
        shards = events.shards  # type: ignore[union-attr]
    else:
        shards = shards or (default_shards(events, workers) if workers > 1 else 1)  # type: ignore[arg-type]
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("part-*.jsonl"):
        old.unlink()
    parts = [out_dir / f"part-{s:05d}.jsonl" for s in range(shards)]
    t0 = time.perf_counter()
    if presplit:
        with _pool(workers) as pool:
            futures = [pool.submit(snapshot_shard, events, at_s, parts[s], params, validate, since, s, shards, rules)
                       for s in range(shards)]
            results = [f.result() for f in futures]
    elif shards == 1:
        results = [snapshot_shard([events], at_s, parts[0], params, validate, since, 0, 1, rules)]
    else:
        tmp = Path(tempfile.mkdtemp(prefix="nbo-snapshot-", dir=work_dir))
        try:
            with _pool(workers) as pool:
                files = partition_log(events, shards, tmp, pool, ranges=workers)
                futures = [pool.submit(snapshot_shard, files[s], at_s, parts[s], params, validate, since, s, shards, rules)
                           for s in range(shards)]
                results = [f.result() for f in futures]
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    newest: dict[str, dict[str, float]] = {"source": {}, "type": {}}
    if since is not None:
        previous = read_manifest(since)
        newest = {f: {k: iso_epoch_s(v) for k, v in previous[f"newest_event_by_{f}"].items()} for f in newest}
    for r in results:
        for field in ("source", "type"):
            for name, at in r[f"newest_by_{field}"].items():
                newest[field][name] = max(at, newest[field].get(name, at))
    manifest = {
        "format": SNAPSHOT_FORMAT, "version": SNAPSHOT_VERSION,
        "at": _iso(at_s), "at_s": at_s,
        "shards": shards, "shard_function": SHARD_FUNCTION,
        "feature_params": params_record(params),
        "customers": sum(r["customers"] for r in results),
        "events_folded": sum(r["events"] for r in results) + (read_manifest(since)["events_folded"] if since else 0),
        "purchases": sum(r["purchases"] for r in results),
        "newest_event_s": max([r["newest_s"] for r in results] + ([read_manifest(since)["newest_event_s"]] if since else [0.0])),
        "newest_event_by_source": {k: _iso(v) for k, v in sorted(newest["source"].items())},
        "newest_event_by_type": {k: _iso(v) for k, v in sorted(newest["type"].items())},
        "events": str(events), "since": str(since) if since is not None else None,
        "elapsed_s": round(time.perf_counter() - t0, 2),
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def params_record(params: FeatureParams) -> dict[str, Any]:
    """The feature parameters as the manifest records them (JSON: rates as decimal text)."""
    return json.loads(json.dumps(asdict(params), default=str))


def read_manifest(snapshot: Path) -> dict[str, Any]:
    path = snapshot / "manifest.json"
    if not path.exists():
        raise ValueError(f"{snapshot}: not a state snapshot (no manifest.json); write one with nbo snapshot")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("format") != SNAPSHOT_FORMAT or manifest.get("version") != SNAPSHOT_VERSION:
        raise ValueError(f"{snapshot}: snapshot format {manifest.get('format')} v{manifest.get('version')}, "
                         f"this version reads {SNAPSHOT_FORMAT} v{SNAPSHOT_VERSION}")
    return manifest


def check_snapshot(snapshot: Path, params: FeatureParams) -> dict[str, Any]:
    """The manifest, after checking the snapshot was folded with the same feature half-lives."""
    manifest = read_manifest(snapshot)
    if manifest["feature_params"] != params_record(params):
        raise ValueError(f"{snapshot}: folded with feature half-lives and rates {manifest['feature_params']}, this "
                         f"fold uses {params_record(params)}: its states would not match; write a new snapshot")
    return manifest


def read_snapshot_shard(snapshot: Path, shard: int = 0,
                        shards: int = 1) -> tuple[dict[str, CustomerState], list[Purchase], float]:
    """(states, purchases before the snapshot, its time) of the customers of ``shard`` of
    ``shards`` (all of them for ``shards=1``)."""
    manifest = read_manifest(snapshot)
    own = manifest["shards"] == shards
    parts = [snapshot / f"part-{shard:05d}.jsonl"] if own else sorted(snapshot.glob("part-*.jsonl"))
    states: dict[str, CustomerState] = {}
    bought: list[Purchase] = []
    intern = sys.intern
    with gc_paused():
        for part in parts:
            for line in read_lines(part):
                record = orjson.loads(line)
                data = record["state"]
                cid = intern(data["customer_id"])
                if not own and shards > 1 and shard_of(cid, shards) != shard:
                    continue
                data["customer_id"] = cid
                states[cid] = CustomerState.from_dict(data)
                bought += [Purchase(cid, intern(pid), at) for pid, at in record["purchases"]]
    return states, bought, float(manifest["at_s"])


def _iso(epoch_s: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_s))


__all__ = ["PackedStates", "PartitionedLog", "ShardFold", "byte_ranges", "check_snapshot", "fold_on_dask",
           "fold_shard", "merge_folds", "partition_log", "read_snapshot_shard", "shard_of", "write_snapshot"]
