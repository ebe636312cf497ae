"""``nbo snapshot``: the customer states as of a time, folded from an event log, in a directory
that later trainings start from (``nbo train --snapshot DIR --events NEWER``) instead of folding
the whole history again.

    nbo snapshot --events history.jsonl --at 2026-01-01 --out snapshots/2026-01-01 --workers 2
    nbo snapshot --events january.jsonl --since snapshots/2026-01-01 --at 2026-02-01 --out snapshots/2026-02-01

The snapshot holds every event strictly before ``--at`` (default: just after the newest event):
each customer's state and purchases, the snapshot time, the newest event time per source and per
event type, and the feature half-lives it was folded with (docs/TRAINING.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=Path, required=True,
                        help="JSONL event log (each customer's events in time order), or a training store "
                             "directory (nbo import), whose buckets are then the snapshot's parts")
    parser.add_argument("--at", default=None,
                        help="snapshot time, ISO 8601 (UTC if no zone); events before it are folded in "
                             "(default: one second after the newest event)")
    parser.add_argument("--out", type=Path, required=True, help="snapshot directory to write (replaced if present)")
    parser.add_argument("--since", type=Path, default=None,
                        help="an older snapshot to start from; --events then needs only the events from its time on")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes folding customer partitions in parallel (1 = in this process)")
    parser.add_argument("--shards", type=int, default=None,
                        help="customer partitions (snapshot part files); default: one per worker and per 512 MB "
                             "of log, or 1 with one worker")
    parser.add_argument("--no-validate", action="store_true",
                        help="the log was written by this system (nbo simulate, nbo import, a dump of the topics): "
                             "skip validating each event again (about a third faster)")
    parser.add_argument("--json", action="store_true", help="print the manifest as one JSON object")


def run(args: argparse.Namespace) -> int:
    from bootstrap import contract_rules, feature_params, load_settings
    from recommender.evaluation import scan_history
    from recommender.matrix import iso_epoch_s, read_lines
    from recommender.partitioned_fold import write_snapshot

    if not args.events.exists():
        print(f"nbo snapshot: --events {args.events}: file not found", file=sys.stderr)
        return 2
    if args.workers < 1 or (args.shards is not None and args.shards < 1):
        print("nbo snapshot: --workers and --shards must be at least 1", file=sys.stderr)
        return 2
    source: Any = args.events
    if args.events.is_dir():
        from adapters.history_partitions import StorePartitions
        from adapters.history_store import HistoryStore, HistoryStoreError

        try:
            last_s = HistoryStore(args.events).summary().last_s or 0.0
        except HistoryStoreError as exc:
            print(f"nbo snapshot: --events {exc}", file=sys.stderr)
            return 2
        source = StorePartitions(args.events)
    try:
        if args.at is not None:
            at_s = iso_epoch_s(args.at)
        elif args.events.is_dir():
            at_s = last_s + 1.0
        else:
            at_s = scan_history(read_lines(args.events)).last_event_s + 1.0
    except (KeyError, ValueError) as exc:
        print(f"nbo snapshot: --at / occurred_at: {exc}", file=sys.stderr)
        return 2
    settings = load_settings()
    try:
        manifest = write_snapshot(source, at_s, args.out, feature_params(settings), workers=args.workers,
                                  shards=args.shards, validate=not args.no_validate, since=args.since,
                                  rules=contract_rules(settings))
    except ValueError as exc:
        print(f"nbo snapshot: {exc}", file=sys.stderr)
        return 2
    print(f"snapshot at {manifest['at']}: {manifest['customers']:,} customers, {manifest['events_folded']:,} events, "
          f"{manifest['purchases']:,} purchases in {manifest['shards']} part(s), {manifest['elapsed_s']:.1f} s; "
          f"written to {args.out}", file=sys.stderr)
    if args.json:
        print(json.dumps(manifest))
    return 0
