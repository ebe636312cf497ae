"""The fold over customer partitions, the trusted decoder and state snapshots: each gives exactly
the states (and purchases) of the serial fold of the whole log."""

from __future__ import annotations

import json
import zlib
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.catalog import load_catalog
from domain.features import FeatureParams
from recommender.evaluation import fold_for_training, scan_history
from recommender.matrix import FoldedLog, fold_event_log, read_lines
from recommender.partitioned_fold import (
    PackedStates,
    PartitionedLog,
    by_customer,
    byte_ranges,
    fold_on_dask,
    fold_shard,
    merge_folds,
    partition_log,
    read_manifest,
    shard_of,
    write_snapshot,
)
from schemas.codec import InvalidEvent, decode, decode_trusted, encode
from schemas.events import OfferOutcomeRecorded
from simulator.bank import simulate

DAY_S = 86_400.0


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[float]]:
    """A simulated log (80 customers x 8 days) and cutoffs inside its days."""
    result = simulate(load_catalog(), customers=80, days=8, seed=11)
    path = tmp_path_factory.mktemp("fold") / "events.jsonl"
    path.write_bytes(b"\n".join(result.encoded()) + b"\n")
    cutoff = datetime.fromisoformat(result.truth.meta["cutoff"]).timestamp()
    return path, [cutoff - 6 * DAY_S, cutoff - 3 * DAY_S + 4321.0, cutoff]


def _same(a: FoldedLog, b: FoldedLog) -> None:
    assert a.cutoffs_s == b.cutoffs_s
    for k in range(len(a.cutoffs_s)):
        left, right = dict(a.states[k]), dict(b.states[k])
        assert left.keys() == right.keys()
        assert left == right  # exactly: every float bit for bit
    key = lambda p: (p.customer_id, p.at_s, p.product_id)  # noqa: E731
    assert sorted(map(key, a.purchases)) == sorted(map(key, b.purchases))
    assert (a.events, a.last_event_s) == (b.events, b.last_event_s)


def test_trusted_decoder_gives_the_validated_events(log: tuple[Path, list[float]]) -> None:
    path, _ = log
    records = list(read_lines(path))
    outcome = OfferOutcomeRecorded(event_id="evt-outcome-0001", customer_id="C000000001",
                                   occurred_at="2026-01-02T08:00:00.250+08:00", source="teller_app",
                                   decision_id="d-abcdef12", product_id="fund_sip", channel="teller",
                                   outcome="declined", decline_reason="too_expensive")
    records.append(encode(outcome))
    assert len({orjson.loads(r)["type"] for r in records}) >= 5
    for raw in records:
        expected, got = decode(raw), decode_trusted(orjson.loads(raw))
        assert got == expected
        assert type(got) is type(expected)
        assert got.occurred_at.timestamp() == expected.occurred_at.timestamp()
        assert {k: type(v) for k, v in got.__dict__.items()} == {k: type(v) for k, v in expected.__dict__.items()}


def test_trusted_decoder_validates_what_it_cannot_build() -> None:
    broken = {"event_id": "evt-x-000001", "customer_id": "C000000001", "occurred_at": "2026-01-02T08:00:00Z",
              "source": "cti", "type": "hotline", "intent": "no_such_intent", "duration_s": 1, "resolved": True,
              "sentiment": 0.0, "schema_version": 1}
    with pytest.raises(InvalidEvent) as err:
        decode_trusted(dict(broken))
    assert err.value.field == "intent"
    missing = {k: v for k, v in broken.items() if k != "duration_s"} | {"intent": "other"}
    with pytest.raises(InvalidEvent) as err:
        decode_trusted(missing)
    assert err.value.field == "duration_s"


def test_trusted_fold_equals_the_validated_fold(log: tuple[Path, list[float]]) -> None:
    path, cuts = log
    _same(fold_event_log(read_lines(path), cuts), fold_event_log(read_lines(path), cuts, validate=False))


def test_shard_function_is_stable() -> None:
    # CRC-32 of the UTF-8 id: the same in every process (unlike hash()), so files and workers agree
    # (pinned: snapshots written with it are read by shard number)
    assert [shard_of("C000000042", 8), shard_of(b"C000000042", 8)] == [zlib.crc32(b"C000000042") % 8] * 2 == [5, 5]
    assert {shard_of(f"C{i:09d}", 4) for i in range(50)} == {0, 1, 2, 3}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shards=st.integers(1, 9), ranges=st.integers(1, 5))
def test_partitioned_fold_equals_the_serial_fold(log: tuple[Path, list[float]], tmp_path: Path, shards: int,
                                                 ranges: int) -> None:
    path, cuts = log
    out = tmp_path / f"s{shards}-r{ranges}"
    out.mkdir()
    files = partition_log(path, shards, out, ranges=ranges)
    assert sum(len(list(read_lines(f))) for fs in files for f in fs) == len(list(read_lines(path)))
    merged = merge_folds([fold_shard(files[s], cuts, validate=False) for s in range(shards)])
    _same(fold_event_log(read_lines(path), cuts), merged)
    assert all(isinstance(s, PackedStates) for s in merged.states)
    assert list(merged.states[-1]) == sorted(merged.states[-1])


def test_a_shard_is_folded_customer_by_customer_in_each_customers_order() -> None:
    lines = [b'{"customer_id":"B","n":1}\n', b'{"customer_id":"A","n":2}\n', b'{"customer_id": "B", "n": 3}\n',
             b'{"customer_id":"A","n":4}\n', b'{"customer_id":"C","n":5}\n']
    assert [orjson.loads(line)["n"] for line in by_customer(lines)] == [1, 3, 2, 4, 5]


def test_byte_ranges_start_at_line_starts(log: tuple[Path, list[float]]) -> None:
    path, _ = log
    data = path.read_bytes()
    spans = byte_ranges(path, 7)
    assert spans[0][0] == 0 and spans[-1][1] == len(data)
    assert all(data[a - 1: a] == b"\n" for a, _ in spans[1:])
    assert all(b == a for (_, b), (a, _) in zip(spans, spans[1:]))


def test_fold_for_training_on_two_worker_processes_equals_the_serial_fold(log: tuple[Path, list[float]],
                                                                         tmp_path: Path) -> None:
    path, cuts = log
    serial = fold_for_training(read_lines(path), cuts[-1], 3, 2, cuts[0] - DAY_S)
    source = PartitionedLog(path, workers=2, shards=5, validate=False, work_dir=tmp_path)
    parallel = fold_for_training(source, cuts[-1], 3, 2, cuts[0] - DAY_S)
    _same(serial.folded, parallel.folded)
    assert set(source.timings or {}) == {"partition_s", "fold_s", "merge_s"}
    assert list(tmp_path.iterdir()) == []  # the shard files are removed


def test_the_cutting_pass_reads_the_same_times_as_a_scan_of_the_log(log: tuple[Path, list[float]],
                                                                     tmp_path: Path) -> None:
    """Training chooses its label windows from the log's times; on several workers they are read
    while the log is cut (one read of a 10 GB log instead of two), and must be the scan's: the
    same first and last event, event count and purchase times, also for a line another writer
    spaced out (read by decoding it) and one with an offset instead of Z."""
    path, cuts = log
    lines = path.read_bytes().splitlines()
    spaced = json.dumps(json.loads(lines[3]), indent=None, separators=(", ", ": "))
    offset = orjson.loads(lines[5])
    offset["occurred_at"] = offset["occurred_at"].replace("Z", "+08:00")
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_bytes(b"\n".join([*lines[:3], spaced.encode(), lines[4], orjson.dumps(offset), *lines[6:]]) + b"\n")
    for source_path in (path, mixed):
        expected = scan_history(read_lines(source_path))
        source = PartitionedLog(source_path, workers=2, shards=3, validate=False, work_dir=tmp_path / "work")
        (tmp_path / "work").mkdir(exist_ok=True)
        got = source.scan()
        assert (got.first_event_s, got.last_event_s, got.events) == (
            expected.first_event_s, expected.last_event_s, expected.events)
        assert got.purchase_times_s.tolist() == expected.purchase_times_s.tolist()
        assert len(got.purchase_times_s) > 0
        # the fold reads the files the scan cut, and removes them after
        _same(fold_event_log(read_lines(source_path), cuts), source.fold(cuts))
        assert source.timings is not None and source.timings["partition_s"] > 0
        assert list((tmp_path / "work").iterdir()) == []


@pytest.mark.parametrize("shards", [1, 3])
def test_snapshot_plus_the_newer_events_equals_the_full_fold(log: tuple[Path, list[float]], tmp_path: Path,
                                                             shards: int) -> None:
    path, cuts = log
    at_s = cuts[0]
    snap = tmp_path / "snap"
    manifest = write_snapshot(path, at_s, snap, workers=1, shards=shards)
    assert manifest["at_s"] == at_s and manifest["shards"] == shards
    before = [r for r in read_lines(path) if _at(r) < at_s]
    newer = tmp_path / "newer.jsonl"
    newer.write_bytes(b"".join(r for r in read_lines(path) if _at(r) >= at_s))
    assert manifest["events_folded"] == len(before)
    assert manifest["customers"] == len({orjson.loads(r)["customer_id"] for r in before})
    newest_pos = max(_at(r) for r in before if orjson.loads(r)["type"] == "pos")
    assert datetime.fromisoformat(manifest["newest_event_by_type"]["pos"]).timestamp() == int(newest_pos)
    full = fold_event_log(read_lines(path), cuts)
    for workers, tail in ((1, newer), (2, newer), (1, path)):  # the whole log as the tail: older events skipped
        source = PartitionedLog(tail, workers=workers, shards=None if workers == 1 else 2, snapshot=snap,
                                work_dir=tmp_path)
        _same(full, source.fold(cuts))


def test_a_snapshot_newer_than_a_cutoff_or_with_other_half_lives_is_refused(log: tuple[Path, list[float]],
                                                                           tmp_path: Path) -> None:
    path, cuts = log
    snap = tmp_path / "snap"
    write_snapshot(path, cuts[1], snap)
    with pytest.raises(ValueError, match="use an older snapshot"):
        PartitionedLog(path, snapshot=snap).fold(cuts)
    other = replace(FeatureParams(), token_half_life_days=7.0)
    with pytest.raises(ValueError, match="half-lives"):
        PartitionedLog(path, workers=2, snapshot=snap, work_dir=tmp_path).fold(cuts[1:], other)
    with pytest.raises(ValueError, match="not a state snapshot"):
        read_manifest(tmp_path)


def test_a_snapshot_from_a_snapshot_equals_one_from_the_whole_log(log: tuple[Path, list[float]],
                                                                  tmp_path: Path) -> None:
    path, cuts = log
    write_snapshot(path, cuts[0], tmp_path / "first", shards=2, workers=2, work_dir=tmp_path)
    newer = tmp_path / "newer.jsonl"
    newer.write_bytes(b"".join(r for r in read_lines(path) if _at(r) >= cuts[0]))
    chained = write_snapshot(newer, cuts[1], tmp_path / "second", since=tmp_path / "first")
    direct = write_snapshot(path, cuts[1], tmp_path / "direct")
    for key in ("customers", "events_folded", "purchases", "newest_event_by_source", "newest_event_by_type"):
        assert chained[key] == direct[key], key
    assert (tmp_path / "second" / "part-00000.jsonl").read_bytes() == (tmp_path / "direct" / "part-00000.jsonl").read_bytes()


def test_dask_local_cluster_fold_equals_the_serial_fold(log: tuple[Path, list[float]], tmp_path: Path) -> None:
    from dask.distributed import Client, LocalCluster

    path, cuts = log
    files = partition_log(path, 4, tmp_path)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        folded = fold_on_dask(client, files, cuts, validate=False)
    _same(fold_event_log(read_lines(path), cuts), folded)


def _at(raw: bytes) -> float:
    return datetime.fromisoformat(json.loads(raw)["occurred_at"].replace("Z", "+00:00")).timestamp()


def test_a_training_store_is_folded_bucket_by_bucket_on_two_processes(log: tuple[Path, list[float]],
                                                                       tmp_path: Path) -> None:
    import polars as pl

    from adapters.history_partitions import StorePartitions
    from adapters.history_store import HistoryStore, iter_history

    path, cuts = log
    records = list(read_lines(path))
    heads = [orjson.loads(r) for r in records]
    store = HistoryStore(tmp_path / "store", create=True, buckets=3)
    batch = pl.DataFrame({"customer_id": [h["customer_id"] for h in heads],
                          "occurred_at_us": [int(_at(r) * 1e6) for r in records], "type": [h["type"] for h in heads],
                          "event_id": [h["event_id"] for h in heads], "event": [r.rstrip(b"\n") for r in records]})
    with store.locked():
        store.write(store.prepare(batch, store.next_seq()))
    buckets = StorePartitions(store.root)
    assert buckets.shards == 3  # the store's buckets are the fold's shards: the same CRC-32 of the id
    assert all(shard_of(orjson.loads(line)["customer_id"], 3) == b for b in range(3) for line in buckets.lines(b))
    serial = fold_event_log(iter_history(store.root), cuts)
    _same(fold_event_log(read_lines(path), cuts), serial)
    parallel = PartitionedLog(StorePartitions(store.root), workers=2, validate=False, work_dir=tmp_path).fold(cuts)
    _same(serial, parallel)
    snap = tmp_path / "snap"
    manifest = write_snapshot(StorePartitions(store.root), cuts[0], snap, workers=2)
    assert manifest["shards"] == 3
    _same(serial, PartitionedLog(StorePartitions(store.root), workers=2, snapshot=snap, work_dir=tmp_path).fold(cuts))
