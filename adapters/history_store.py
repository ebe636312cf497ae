"""The training store: a bank's event history as Parquet files, what ``nbo import`` writes and
``nbo train --history`` (and any backtest) reads.

Layout of a store directory (default ``<NBO_DATA_DIR>/history``)::

    store.json                          {"format": 1, "buckets": 16}, written when the store is made
    bucket=07/part-<UTC time>-<id>.parquet   one file per bucket per import flush

A row is one event; its columns:

| column | type | holds |
| --- | --- | --- |
| ``customer_id`` | string | the contract's customer token |
| ``occurred_at_us`` | int64 | the event time, UTC epoch microseconds |
| ``type`` | string | the contract's ``type`` (``deposit``, ``pos``, ``purchase``, ...) |
| ``event_id`` | string | the event id (for imported rows: derived from the source row's key) |
| ``seq`` | int64 | the order rows entered the store: unique, increasing from one import to the next |
| ``event`` | binary | the event as the contract's JSON, byte for byte ``schemas.codec.encode`` |

A customer's rows all sit in one bucket (``bucket_of``: CRC-32 of the id, modulo the bucket
count, the same on every machine and version), so one bucket at a time is enough to put every
customer's events in time order; each part file is sorted by ``(customer_id, occurred_at_us,
seq)``. The store holds one row per ``(customer_id, event_id)``: ``HistoryStore.prepare``
drops rows the store or the batch already holds (the stream's duplicate rule: ids are
per customer), so importing the same files twice adds nothing. A part is written to a
temporary name and renamed, so a crash leaves no half file; one import at a time holds the
store's lock.

**The one entry point for readers is ``iter_history(store)``**: the JSON lines, one bucket
after another, each customer's events in time order (ties in import order); that is the input
``recommender.matrix.fold_event_log`` takes, so training, backtests and replays fold the history
with the same feature fold as the stream.
"""

from __future__ import annotations

import fcntl
import json
import os
import uuid
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import polars as pl
import pyarrow.parquet as pq

STORE_FORMAT = 1
DEFAULT_BUCKETS = 16
MANIFEST = "store.json"
COLUMNS = ("customer_id", "occurred_at_us", "type", "event_id", "seq", "event")
SCHEMA = {"customer_id": pl.String, "occurred_at_us": pl.Int64, "type": pl.String, "event_id": pl.String,
          "seq": pl.Int64, "event": pl.Binary}


class HistoryStoreError(ValueError):
    """A directory that is not a training store, or one in a format this version cannot read."""


def bucket_of(customer_id: str, buckets: int) -> int:
    """The bucket of a customer: CRC-32 of its UTF-8 id modulo ``buckets``."""
    return zlib.crc32(customer_id.encode("utf-8")) % buckets


@dataclass
class Prepared:
    """What one batch adds to the store, before it is written: ``rows`` (``SCHEMA``, sorted by
    customer, time and ``seq``) and how many of the batch were duplicates."""

    rows: pl.DataFrame
    duplicates: int


@dataclass(frozen=True)
class StoreSummary:
    rows: int
    customers: int
    first_s: float | None  # UTC epoch seconds of the earliest event
    last_s: float | None  # and of the latest
    parts: int


class HistoryStore:
    """A training store directory; ``create=True`` makes it (with ``buckets``) when missing."""

    def __init__(self, root: Path, *, create: bool = False, buckets: int = DEFAULT_BUCKETS) -> None:
        self.root = Path(root)
        manifest = self.root / MANIFEST
        if not manifest.exists():
            if not create:
                raise HistoryStoreError(f"{self.root} is not a training store (no {MANIFEST}); "
                                        "nbo import writes one")
            if buckets < 1:
                raise HistoryStoreError("a store needs at least one bucket")
            self.root.mkdir(parents=True, exist_ok=True)
            _write_atomic(manifest, json.dumps({"format": STORE_FORMAT, "buckets": buckets}).encode())
        try:
            meta = json.loads(manifest.read_text(encoding="utf-8"))
            fmt, self.buckets = int(meta["format"]), int(meta["buckets"])
        except (ValueError, KeyError, TypeError) as exc:
            raise HistoryStoreError(f"{manifest}: not a training store manifest ({exc})") from None
        if fmt != STORE_FORMAT:
            raise HistoryStoreError(f"{manifest}: store format {fmt}, this version reads format {STORE_FORMAT}")

    # -- layout

    def bucket_dir(self, bucket: int) -> Path:
        return self.root / f"bucket={bucket:02d}"

    def parts(self, bucket: int | None = None) -> list[Path]:
        """The part files of one bucket (or of all), in name order (name = write time)."""
        if bucket is not None:
            return sorted(self.bucket_dir(bucket).glob("part-*.parquet"))
        return [p for b in range(self.buckets) for p in self.parts(b)]

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the store's write lock (one import at a time); raises when another holds it."""
        with open(self.root / ".lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise HistoryStoreError(f"{self.root}: another import is writing this store") from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- writing

    def next_seq(self) -> int:
        """One more than the highest ``seq`` stored (from the Parquet statistics), 0 when empty."""
        top = -1
        for path in self.parts():
            meta = pq.ParquetFile(path).metadata
            index = meta.schema.names.index("seq")
            for g in range(meta.num_row_groups):
                stats = meta.row_group(g).column(index).statistics
                if stats is not None and stats.has_min_max:
                    top = max(top, int(stats.max))
        return top + 1

    def prepare(self, batch: pl.DataFrame, first_seq: int) -> Prepared:
        """The rows of ``batch`` (``customer_id``, ``occurred_at_us``, ``type``, ``event_id``,
        ``event``) the store does not hold yet, the first of each ``(customer_id, event_id)``
        only, numbered from ``first_seq`` in (customer, time, batch order) order."""
        if batch.is_empty():
            return Prepared(pl.DataFrame(schema=SCHEMA), 0)
        fresh = batch.select("customer_id", "occurred_at_us", "type", "event_id", "event").unique(
            ["customer_id", "event_id"], keep="first", maintain_order=True)
        fresh = fresh.with_columns(_bucket_expr(self.buckets))
        kept = []
        for (bucket,), rows in fresh.partition_by("bucket", as_dict=True).items():
            held = self._held_ids(int(bucket))
            if held is not None:
                rows = rows.join(held, on=["customer_id", "event_id"], how="anti")
            kept.append(rows)
        new = pl.concat(kept) if kept else fresh.clear()
        new = (new.with_row_index("_order").sort(["customer_id", "occurred_at_us", "_order"])
               .with_columns((pl.int_range(pl.len(), dtype=pl.Int64) + first_seq).alias("seq"))
               .select(*COLUMNS))
        return Prepared(new, batch.height - new.height)

    def write(self, prepared: Prepared) -> int:
        """Write the prepared rows, one part per bucket; returns the rows written."""
        rows = prepared.rows
        if rows.is_empty():
            return 0
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
        rows = rows.with_columns(_bucket_expr(self.buckets))
        for (bucket,), part in rows.partition_by("bucket", as_dict=True).items():
            folder = self.bucket_dir(int(bucket))
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / f"part-{stamp}-{uuid.uuid4().hex[:8]}.parquet"
            temporary = target.with_suffix(".tmp")
            part.select(*COLUMNS).write_parquet(temporary, compression="zstd", statistics=True)
            os.replace(temporary, target)
        _fsync_dir(self.root)
        return rows.height

    def _held_ids(self, bucket: int) -> pl.DataFrame | None:
        parts = self.parts(bucket)
        if not parts:
            return None
        return pl.read_parquet(parts, columns=["customer_id", "event_id"])

    # -- reading

    def frames(self, columns: tuple[str, ...] = COLUMNS) -> Iterator[pl.DataFrame]:
        """Each non-empty bucket as one frame sorted by (customer_id, occurred_at_us, seq)."""
        need = list(dict.fromkeys([*columns, "customer_id", "occurred_at_us", "seq"]))
        for bucket in range(self.buckets):
            parts = self.parts(bucket)
            if not parts:
                continue
            frame = pl.read_parquet(parts, columns=need).sort(["customer_id", "occurred_at_us", "seq"])
            yield frame.select(*columns)

    def lines(self) -> Iterator[bytes]:
        """The stored events as JSON lines (see ``iter_history``)."""
        for frame in self.frames(("event",)):
            yield from frame.get_column("event").to_list()

    def summary(self) -> StoreSummary:
        parts = self.parts()
        if not parts:
            return StoreSummary(0, 0, None, None, 0)
        frame = pl.scan_parquet(parts).select(
            pl.len().alias("rows"), pl.col("customer_id").n_unique().alias("customers"),
            pl.col("occurred_at_us").min().alias("first"), pl.col("occurred_at_us").max().alias("last")).collect()
        row = frame.row(0, named=True)
        return StoreSummary(int(row["rows"]), int(row["customers"]), row["first"] / 1e6, row["last"] / 1e6, len(parts))


def iter_history(store: Path | HistoryStore) -> Iterator[bytes]:
    """Every event of a training store as its contract JSON line (``schemas.codec.decode`` reads
    it), each customer's events in time order (ties in import order), customers grouped one
    bucket at a time: the input of ``recommender.matrix.fold_event_log``. Memory: one bucket."""
    opened = store if isinstance(store, HistoryStore) else HistoryStore(Path(store))
    return opened.lines()


def _bucket_expr(buckets: int) -> pl.Expr:
    """``bucket_of`` for a column of ids, computed once per distinct customer."""
    return pl.col("customer_id").map_batches(
        lambda ids: _buckets_of(ids, buckets), return_dtype=pl.Int32).alias("bucket")


def _buckets_of(ids: pl.Series, buckets: int) -> pl.Series:
    distinct = ids.unique()
    table = {cid: bucket_of(cid, buckets) for cid in distinct.to_list()}
    return ids.replace_strict(table, return_dtype=pl.Int32)


def _write_atomic(path: Path, data: bytes) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
