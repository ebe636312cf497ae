"""The training store's buckets as the customer partitions of the parallel fold
(``recommender.partitioned_fold``): a bucket is ``bucket_of`` = CRC-32 of the customer id modulo
the bucket count, the fold's ``shard_of`` with ``shards`` = the store's buckets, so each worker
reads its own buckets and no partition pass is needed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import polars as pl

from adapters.history_store import HistoryStore


@dataclass(frozen=True)
class StorePartitions:
    """A training store read one bucket at a time (picklable: worker processes open it themselves)."""

    root: Path

    @property
    def shards(self) -> int:
        return HistoryStore(self.root).buckets

    def lines(self, shard: int) -> Iterator[bytes]:
        """Bucket ``shard``'s events as contract JSON lines, each customer's in time order (ties in
        import order), as ``iter_history`` gives them."""
        parts = HistoryStore(self.root).parts(shard)
        if not parts:
            return iter(())
        frame = pl.read_parquet(parts, columns=["customer_id", "occurred_at_us", "seq", "event"])
        return iter(frame.sort(["customer_id", "occurred_at_us", "seq"]).get_column("event").to_list())

    def __str__(self) -> str:
        return str(self.root)
