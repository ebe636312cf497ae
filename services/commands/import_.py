"""``nbo import``: a bank's history from files into the training store (docs/IMPORT.md).

    nbo import events.jsonl                                    # contract rows (nbo simulate's log)
    nbo import --mapping examples/core_banking/mapping.yaml    # the tables next to the mapping
    nbo import --mapping bank.yaml txns_2019.csv cards.parquet holdings.csv --to-redis
    nbo train --history .nbo/history --promote

Every row is checked against the event contract; refused rows go to the rejects file with the
file, the row, the field and the reason (masked). A rerun of the same files imports nothing
twice: event ids come from each row's key (mapped tables) or the row's ``event_id``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from adapters.history_files import EVENT_TYPES, HistoryFileError, load_mapping
from adapters.history_store import DEFAULT_BUCKETS, HistoryStore, HistoryStoreError

#: Inputs smaller than this (bytes, all files) are checked in this process: a pool costs ~1 s to start.
POOL_FROM_BYTES = 16 << 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="*", type=Path,
                        help="CSV, JSONL or Parquet files (default: the tables' files next to --mapping)")
    parser.add_argument("--mapping", type=Path, default=None,
                        help="YAML or TOML mapping of core-banking tables to events; files it does not match "
                             "are read as contract rows (default: every file is contract rows)")
    parser.add_argument("--type", dest="event_type", choices=sorted(EVENT_TYPES), default=None,
                        help="event type of contract files without a type column (default: from the file name)")
    parser.add_argument("--store", type=Path, default=None, help="training store directory (default <NBO_DATA_DIR>/history)")
    parser.add_argument("--buckets", type=int, default=DEFAULT_BUCKETS,
                        help="customer buckets of a new store (one is read into memory at a time)")
    parser.add_argument("--rejects", type=Path, default=None,
                        help="rejects file, .csv or .jsonl (default <store>/rejects-<UTC time>.jsonl)")
    parser.add_argument("--catalog", type=Path, default=None,
                        help="product catalog purchases must name (default NBO_CATALOG__PATH or the packaged one)")
    parser.add_argument("--to-redis", action="store_true",
                        help="also fold the imported events into the customers' Redis states (NBO_REDIS__URL)")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes checking rows against the contract; 0: this one (default: the cores "
                             "plus one, as this process reads, maps and writes meanwhile; 0 for inputs under 16 MB)")
    parser.add_argument("--chunk-rows", type=int, default=100_000, help="rows read and checked at a time")
    parser.add_argument("--flush-rows", type=int, default=2_000_000, help="valid rows written to the store at a time")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.add_argument("--json", action="store_true", help="end with one JSON object of the counts")


def run(args: argparse.Namespace) -> int:
    from datetime import datetime, timezone

    from bootstrap import catalog, feature_params, load_settings
    from bootstrap.root import contract_rules, history_dir, history_state_store
    from domain.catalog import CatalogError
    from services.history_import import Importer, ImportReport, RejectsFile
    from streams.core import KnownProducts

    settings = load_settings()
    try:
        mapping = load_mapping(args.mapping) if args.mapping else None
        files = list(args.files) or (mapping.default_files() if mapping else [])
        if not files:
            print("nbo import: no files given" + (f" and none next to {args.mapping} matches its tables"
                                                  if mapping else ""), file=sys.stderr)
            return 2
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            print(f"nbo import: file(s) not found: {', '.join(missing)}", file=sys.stderr)
            return 2
        products = KnownProducts.of(catalog(settings, args.catalog))
        store = HistoryStore(args.store or history_dir(settings), create=True, buckets=args.buckets)
    except (HistoryFileError, HistoryStoreError, CatalogError) as exc:
        print(f"nbo import: {exc}", file=sys.stderr)
        return 2
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    rejects = RejectsFile(args.rejects or store.root / f"rejects-{stamp}.jsonl")
    workers = args.workers
    if workers is None:
        # one checker per core plus one: this process reads, maps and writes while they check
        workers = (os.cpu_count() or 1) + 1 if sum(f.stat().st_size for f in files) >= POOL_FROM_BYTES else 0
    state_store = history_state_store(settings) if args.to_redis else None

    def progress(report: ImportReport) -> None:
        print(f"import: {report.read:,} rows read, {report.valid:,} valid, {report.rejected:,} rejected, "
              f"{report.rows_per_s:,.0f} rows/s", file=sys.stderr, flush=True)

    importer = Importer(store, rejects, products, mapping=mapping, event_type=args.event_type, workers=workers,
                        chunk_rows=args.chunk_rows, flush_rows=args.flush_rows, state_store=state_store,
                        features=feature_params(settings), progress=None if args.quiet else progress,
                        rules=contract_rules(settings))
    try:
        report = importer.run(files)
    except (HistoryFileError, HistoryStoreError) as exc:
        print(f"nbo import: {exc}", file=sys.stderr)
        return 2
    finally:
        rejects.close()
        if state_store is not None:
            state_store.close()
    print(f"read {report.read:,} rows from {report.files} file(s) in {report.elapsed_s:.1f} s "
          f"({report.rows_per_s:,.0f} rows/s): {report.imported:,} imported, {report.rejected:,} rejected, "
          f"{report.duplicates:,} duplicates; store {store.root}", file=sys.stderr)
    if report.rejected:
        print(f"rejected rows and their reasons: {rejects.path}", file=sys.stderr)
    else:
        rejects.path.unlink(missing_ok=True)
    if state_store is not None:
        print(f"Redis: {report.to_redis:,} events folded into {report.customers_to_redis:,} customers' states",
              file=sys.stderr)
    if args.json:
        print(json.dumps({**report.to_dict(), "store": str(store.root),
                          "rejects": str(rejects.path) if report.rejected else None}))
    return 0
