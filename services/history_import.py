"""``nbo import``'s pipeline: history files -> contract check -> training store (and Redis).

    files --(adapters.history_files: read in chunks, map columns)--> candidate events
          --(adapters.contract_rows.check_lines, in a process pool)--> valid rows | refused rows
          --(catalog: a purchase or outcome of an unknown product is refused, as the stream does)
          --(adapters.history_store: drop ids the store holds, number, sort, write Parquet)
          --(optional: the same rows folded into Redis through the StateStore port)

Refused rows go to the rejects file with the source file, the row number, the field and the
reason, masked as dead letters are (``streams.masking``: card-number-like digits and free text
never appear in clear, the customer id included). Rows are written to the store every
``flush_rows`` valid rows; a flush writes Redis first, then the store's parts, so a crash in
between is repaired by running the same import again (the rows are not in the store yet, get
the same ``seq`` numbers, and Redis skips what it applied: its offset for ``HISTORY_TOPIC``).
"""

from __future__ import annotations

import csv
import multiprocessing
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Iterator, Sequence

import orjson
import polars as pl
import pyarrow as pa

from adapters.contract_rows import CheckedRows, check_lines, with_fields
from adapters.history_files import (
    DEFAULT_CHUNK_ROWS,
    Candidates,
    Mapping,
    Refusal,
    contract_batches,
    mapped_batches,
)
from adapters.history_store import HistoryStore, Prepared
from adapters.ports import SourcedEvent, StateStore
from domain.features import FeatureParams
from domain.money import ExchangeRates, in_base_currency
from schemas.codec import decode
from schemas.rules import DEFAULT_RULES, ContractRules
from streams.core import KnownProducts
from streams.masking import Masker, parsed

#: The offsets of imported history in Redis: field ``o:nbo.history:0``, the row's store ``seq``.
HISTORY_TOPIC = "nbo.history"
DEFAULT_FLUSH_ROWS = 2_000_000
REDIS_BATCH = 5_000


@dataclass
class ImportReport:
    """Counts of one import. ``read`` = ``imported`` + ``rejected`` + ``duplicates``."""

    read: int = 0
    imported: int = 0
    rejected: int = 0
    duplicates: int = 0
    valid: int = 0  # passed the checks, not yet written (or written: imported + duplicates)
    to_redis: int = 0  # events applied to Redis states
    customers_to_redis: int = 0
    files: int = 0
    elapsed_s: float = 0.0
    timings_s: dict[str, float] = field(default_factory=dict)

    @property
    def rows_per_s(self) -> float:
        return self.read / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rows_per_s": round(self.rows_per_s)}


class RejectsFile:
    """The rejects file: CSV (``.csv``) or JSONL (anything else), one refused row a line, with
    ``source_file``, ``row``, ``customer_id`` (masked), ``field`` and ``reason`` (masked)."""

    COLUMNS = ("source_file", "row", "customer_id", "field", "reason")

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle: IO[str] = open(path, "w", encoding="utf-8", newline="")
        self._csv = csv.writer(self._handle) if path.suffix.lower() == ".csv" else None
        if self._csv is not None:
            self._csv.writerow(self.COLUMNS)
        self.count = 0

    def write(self, source: str, row: int, field_name: str, reason: str, record: Any) -> None:
        """Mask ``record`` (the row as the contract saw it, or the mapped values) and write one line."""
        masker = Masker()
        masked = masker.value(record) if isinstance(record, dict) else None
        customer = masked.get("customer_id") if isinstance(masked, dict) else None
        values = (source, row, customer if isinstance(customer, str) else None, masker.text(field_name),
                  masker.text(reason))
        if self._csv is not None:
            self._csv.writerow(values)
        else:
            self._handle.write(orjson.dumps(dict(zip(self.COLUMNS, values))).decode() + "\n")
        self.count += 1

    def close(self) -> None:
        self._handle.close()


def candidates_of(files: Sequence[Path], mapping: Mapping | None, event_type: str | None,
                  chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[Candidates]:
    """Every file's candidate events: a file a mapping table matches through that table, any
    other as a contract file."""
    for path in files:
        table = mapping.table_for(path) if mapping is not None else None
        if table is not None and mapping is not None:
            yield from mapped_batches(path, mapping, table, chunk_rows)
        else:
            yield from contract_batches(path, event_type, chunk_rows)


def _check(candidates: Candidates, rules: ContractRules, rates: ExchangeRates | None) -> CheckedRows:
    return check_lines(candidates.lines, candidates.keys, candidates.id_prefix, rules, rates, candidates.canonical)


def checked(batches: Iterator[Candidates], workers: int,
            rules: ContractRules = DEFAULT_RULES,
            rates: ExchangeRates | None = None) -> Iterator[tuple[Candidates, CheckedRows]]:
    """Each chunk with its contract check, in order; with ``workers`` > 0 the checks run in a
    process pool (spawned: polars' threads do not survive a fork), ``2 * workers`` chunks ahead."""
    if workers <= 0:
        for batch in batches:
            yield batch, _check(batch, rules, rates)
        return
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        pending: deque[tuple[Candidates, Future[CheckedRows]]] = deque()
        for batch in batches:
            pending.append((batch, pool.submit(check_lines, batch.lines, batch.keys, batch.id_prefix, rules, rates,
                                                  batch.canonical)))
            while len(pending) > 2 * workers:
                done, future = pending.popleft()
                yield done, future.result()
        while pending:
            done, future = pending.popleft()
            yield done, future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class Importer:
    """One import into one store; ``run(files)`` returns the report."""

    def __init__(self, store: HistoryStore, rejects: RejectsFile, products: KnownProducts, *,
                 mapping: Mapping | None = None, event_type: str | None = None, workers: int = 0,
                 chunk_rows: int = DEFAULT_CHUNK_ROWS, flush_rows: int = DEFAULT_FLUSH_ROWS,
                 state_store: StateStore | None = None, features: FeatureParams = FeatureParams(),
                 progress: Callable[[ImportReport], None] | None = None, progress_every_s: float = 5.0,
                 clock: Callable[[], float] = time.time, rules: ContractRules = DEFAULT_RULES) -> None:
        self.store, self.rejects, self.products = store, rejects, products
        self.mapping, self.event_type, self.workers = mapping, event_type, workers
        self.chunk_rows, self.flush_rows = chunk_rows, flush_rows
        self.state_store, self.features = state_store, features
        self.progress, self.progress_every_s, self.clock = progress, progress_every_s, clock
        self.rules = rules
        self.report = ImportReport()
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._customers: set[str] = set()

    def run(self, files: Sequence[Path]) -> ImportReport:
        started = time.perf_counter()
        last_progress = started
        report = self.report
        report.files = len(files)
        with self.store.locked():
            self._seq = self.store.next_seq()
            for batch, result in checked(candidates_of(files, self.mapping, self.event_type, self.chunk_rows),
                                         self.workers, self.rules, self.features.rates):
                self._take(batch, result)
                if self._pending_rows >= self.flush_rows:
                    self._flush()
                now = time.perf_counter()
                if self.progress is not None and now - last_progress >= self.progress_every_s:
                    report.elapsed_s = now - started
                    self.progress(report)
                    last_progress = now
            self._flush()
        report.customers_to_redis = len(self._customers) if self.state_store is not None else 0
        report.elapsed_s = time.perf_counter() - started
        return report

    def _take(self, batch: Candidates, result: CheckedRows) -> None:
        report = self.report
        report.read += batch.read
        for refusal in batch.refused:
            self._refuse_mapped(refusal)
        for index, field_name, reason, line in result.refused:
            ok, data = parsed(line)
            self._refuse(batch.source, batch.rows[index], field_name, reason, data if ok else None)
        valid = result.valid
        if batch.fields is not None:
            valid = with_fields(valid, batch.fields, batch.id_prefix)
        if valid.num_rows:
            products = pl.from_arrow(valid.select(["index", "customer_id", "product_id"]))
            unknown = products.filter(pl.col("product_id").is_not_null()
                                      & ~pl.col("product_id").is_in(list(self.products.ids)))
            if not unknown.is_empty():
                for index, customer, product in unknown.iter_rows():
                    self._refuse(batch.source, batch.rows[index], "product_id",
                                 self.products.refusal(product) or "", {"customer_id": customer, "product_id": product})
                refused = set(unknown.get_column("index").to_list())
                keep = pa.array([i not in refused for i in products.get_column("index").to_list()])
                valid = valid.filter(keep)
            self._pending.append(valid)
            self._pending_rows += valid.num_rows
            report.valid += valid.num_rows

    def _refuse_mapped(self, refusal: Refusal) -> None:
        record = {"customer_id": refusal.customer_id}
        if refusal.value is not None:
            record[refusal.field] = refusal.value
        self._refuse(refusal.source, refusal.row, refusal.field, f"{refusal.field}: {refusal.reason}", record)

    def _refuse(self, source: str, row: int, field_name: str, reason: str, record: Any) -> None:
        self.rejects.write(source, row, field_name, reason, record)
        self.report.rejected += 1

    def _flush(self) -> None:
        if not self._pending:
            return
        t0 = time.perf_counter()
        table = pa.Table.from_batches(self._pending)
        self._pending, self._pending_rows = [], 0
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        prepared = self.store.prepare(frame, self._seq)
        t1 = time.perf_counter()
        if self.state_store is not None:
            self._to_redis(prepared)
        t2 = time.perf_counter()
        written = self.store.write(prepared)
        t3 = time.perf_counter()
        self._seq += written
        self.report.imported += written
        self.report.duplicates += prepared.duplicates
        timings = self.report.timings_s
        for name, spent in (("store_prepare", t1 - t0), ("to_redis", t2 - t1), ("store_write", t3 - t2)):
            timings[name] = round(timings.get(name, 0.0) + spent, 3)

    def _to_redis(self, prepared: Prepared) -> None:
        """Fold the new rows into their customers' Redis states (the stream's own apply), in
        (customer, time) order, ``REDIS_BATCH`` events a pipelined batch."""
        assert self.state_store is not None
        rows = prepared.rows.select("customer_id", "seq", "event")
        batch: list[SourcedEvent] = []
        now_s = self.clock()
        for customer_id, seq, raw in rows.iter_rows():
            batch.append(SourcedEvent(in_base_currency(decode(raw, self.rules), self.features.rates), HISTORY_TOPIC, 0,
                                      int(seq)))
            self._customers.add(customer_id)
            if len(batch) >= REDIS_BATCH:
                self.report.to_redis += self.state_store.apply_batch(batch, self.features, now_s).applied
                batch = []
        if batch:
            self.report.to_redis += self.state_store.apply_batch(batch, self.features, now_s).applied
