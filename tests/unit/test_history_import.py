"""``nbo import``: a mapped extract gives exactly the events it should, bad rows land in the
rejects file with their reasons (masked), a rerun imports nothing twice, and contract rows read
the same from CSV, JSONL and Parquet."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import orjson
import polars as pl
import pyarrow as pa
import pytest

from adapters.contract_rows import check_lines, event_id_for
from adapters.history_files import HistoryFileError, load_mapping
from adapters.history_store import HistoryStore, iter_history
from domain.catalog import load_catalog
from schemas.codec import InvalidEvent, decode, encode
from schemas.events import CardPaymentMade, DepositPosted, ProductPurchased
from services.cli import main
from services.history_import import Importer, RejectsFile
from streams.core import KnownProducts

MAPPING = """
tables:
  txn:
    files: ["txn*.csv"]
    event: deposit
    key: [acct, ref]
    source: core_banking
    fields:
      customer_id: {column: cust, prefix: C, width: 9}
      occurred_at: {column: [day, time], format: "%Y-%m-%d %H:%M:%S", timezone: Asia/Shanghai}
      kind: {sign_of: amount, negative: withdrawal, positive: deposit}
      amount_minor: {column: amount, decimals: 2, absolute: true}
      channel: {column: chan, map: {TLR: counter, ATM: atm}}
      purpose: {column: code, map: {SAL01: salary}, default: other}
      balance_after_minor: {column: balance, decimals: 2}
  hold:
    files: ["hold*.csv"]
    event: purchase
    key: [cust, acct]
    source: core_banking
    fields:
      customer_id: {column: cust, prefix: C, width: 9}
      occurred_at: {column: opened, format: "%Y-%m-%d", timezone: UTC}
      channel: {value: branch}
      product_id: {column: product, map: {TD1Y: time_deposit_1y, CCG: credit_card_gold, OLD: discontinued_fund}}
"""

TXN = [
    ["acct", "ref", "cust", "day", "time", "amount", "chan", "code", "balance"],
    ["6201", "r1", "42", "2019-03-01", "09:00:00", "1500.00", "TLR", "SAL01", "1500.00"],
    ["6201", "r2", "42", "2019-03-02", "10:30:00", "-200.5", "ATM", "CSH01", "1299.50"],
    ["6202", "r1", "7", "2019-03-01", "08:00:00", "30", "TLR", "", "30.00"],
    ["6202", "r2", "7", "2019-03-05", "23:59:59", "12.34", "ATM", "SAL01", "42.34"],
    ["6201", "r3", "42", "2019-03-03", "00:00:01", "0.01", "TLR", "TRF01", "1299.51"],
]


def _write_csv(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    return path


def _import(tmp_path: Path, files: list[Path], mapping: Path | None = None, workers: int = 0,
            store: Path | None = None, **kwargs) -> tuple[dict, list[dict]]:
    rejects = tmp_path / "rejects.jsonl"
    argv = ["import", *map(str, files), "--store", str(store or tmp_path / "store"), "--rejects", str(rejects),
            "--workers", str(workers), "--quiet", "--json"]
    if mapping is not None:
        argv += ["--mapping", str(mapping)]
    for name, value in kwargs.items():
        argv += [f"--{name.replace('_', '-')}", str(value)]
    return argv, rejects


def run_import(tmp_path: Path, capsys, files: list[Path], mapping: Path | None = None, **kwargs):
    argv, rejects = _import(tmp_path, files, mapping, **kwargs)
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    refused = [json.loads(line) for line in rejects.read_text().splitlines()] if rejects.exists() else []
    return summary, refused


@pytest.fixture
def mapping(tmp_path: Path) -> Path:
    path = tmp_path / "bank.yaml"
    path.write_text(MAPPING, encoding="utf-8")
    return path


def test_a_five_row_extract_gives_exactly_these_events(tmp_path, capsys, mapping):
    txn = _write_csv(tmp_path / "txn_2019.csv", TXN)
    summary, refused = run_import(tmp_path, capsys, [txn], mapping)
    assert (summary["read"], summary["imported"], summary["rejected"], summary["duplicates"]) == (5, 5, 0, 0)
    assert refused == []

    def expected(ref: str, acct: str, cust: str, at: str, kind: str, amount: int, channel: str, purpose: str,
                 balance: int) -> DepositPosted:
        return DepositPosted(event_id=event_id_for("txn:", "\x1f".join(["txn", acct, ref])), customer_id=cust,
                             occurred_at=at, source="core_banking", kind=kind, amount_minor=amount, channel=channel,
                             purpose=purpose, balance_after_minor=balance)

    # Asia/Shanghai is UTC+8: 09:00 local is 01:00 UTC; customers in id order, each in time order.
    want = [
        expected("r1", "6202", "C000000007", "2019-03-01T00:00:00Z", "deposit", 3000, "counter", "other", 3000),
        expected("r2", "6202", "C000000007", "2019-03-05T15:59:59Z", "deposit", 1234, "atm", "salary", 4234),
        expected("r1", "6201", "C000000042", "2019-03-01T01:00:00Z", "deposit", 150000, "counter", "salary", 150000),
        expected("r2", "6201", "C000000042", "2019-03-02T02:30:00Z", "withdrawal", 20050, "atm", "other", 129950),
        expected("r3", "6201", "C000000042", "2019-03-02T16:00:01Z", "deposit", 1, "counter", "other", 129951),
    ]
    out = list(iter_history(tmp_path / "store"))
    by_customer = sorted(out, key=lambda line: decode(line).customer_id)  # stable: keeps each one's order
    assert by_customer == [encode(e) for e in want]


def test_bad_rows_go_to_the_rejects_file_with_reasons_and_the_good_ones_are_imported(tmp_path, capsys, mapping):
    txn = _write_csv(tmp_path / "txn.csv", [
        TXN[0], TXN[1],
        ["6201", "r9", "42", "2019-03-04", "09:00:00", "1.234", "TLR", "SAL01", "1.00"],  # bad amount: fen has 2 places
        ["6201", "r8", "42", "2019-02-30", "09:00:00", "1.00", "TLR", "SAL01", "1.00"],  # no such day
        ["6201", "r7", "4111111111111111", "2019-03-04", "09:00:00", "1.00", "XXX", "SAL01", "1.00"],  # channel
    ])
    hold = _write_csv(tmp_path / "hold.csv", [
        ["cust", "acct", "opened", "product"],
        ["42", "a1", "2018-06-01", "TD1Y"],
        ["42", "a2", "2018-06-01", "NOPE"],  # code not in the map
        ["7", "a3", "2018-06-01", "OLD"],  # mapped, but not in the catalog
        ["7", "a4", "1999-12-31", "CCG"],  # before the contract's earliest time
    ])
    summary, refused = run_import(tmp_path, capsys, [txn, hold], mapping)
    assert (summary["read"], summary["imported"], summary["rejected"]) == (8, 2, 6)
    by_row = {(Path(r["source_file"]).name, r["row"]): r for r in refused}
    assert set(by_row) == {("txn.csv", 2), ("txn.csv", 3), ("txn.csv", 4), ("hold.csv", 2), ("hold.csv", 3),
                           ("hold.csv", 4)}
    amount = by_row[("txn.csv", 2)]
    assert amount["field"] == "amount_minor" and "is not a number with at most 2 decimals" in amount["reason"]
    assert amount["customer_id"] == "C000000042"
    assert by_row[("txn.csv", 3)]["field"] == "occurred_at"
    # the joined text holds a space, so the masking shows its length only (free text is never shown)
    assert "in column day, time is not a time in the format %Y-%m-%d %H:%M:%S" in by_row[("txn.csv", 3)]["reason"]
    card_like = by_row[("txn.csv", 4)]
    assert card_like["field"] == "channel" and "'XXX'" in card_like["reason"]
    assert card_like["customer_id"] == "C****1111"  # a PAN where the customer number belongs: masked
    assert "4111111111111111" not in json.dumps(refused)
    assert by_row[("hold.csv", 2)]["field"] == "product_id"
    assert "code 'NOPE' in column product is not in the mapping" in by_row[("hold.csv", 2)]["reason"]
    assert by_row[("hold.csv", 3)]["reason"].startswith("product 'discontinued_fund' is not in the catalog")
    assert by_row[("hold.csv", 4)]["field"] == "occurred_at" and "2000-01-01" in by_row[("hold.csv", 4)]["reason"]
    stored = [decode(line) for line in iter_history(tmp_path / "store")]
    assert sorted((e.type, e.customer_id) for e in stored) == [("deposit", "C000000042"), ("purchase", "C000000042")]


def test_a_rerun_imports_nothing_twice(tmp_path, capsys, mapping):
    txn = _write_csv(tmp_path / "txn.csv", TXN)
    first, _ = run_import(tmp_path, capsys, [txn], mapping)
    again, _ = run_import(tmp_path, capsys, [txn], mapping)
    assert (first["imported"], first["duplicates"]) == (5, 0)
    assert (again["read"], again["imported"], again["duplicates"]) == (5, 0, 5)
    # A file with one new row and the old ones: only the new row is added.
    more = _write_csv(tmp_path / "txn_more.csv", TXN + [["6203", "r1", "9", "2019-01-01", "12:00:00", "5", "ATM",
                                                          "", "5"]])
    third, _ = run_import(tmp_path, capsys, [more], mapping)
    assert (third["imported"], third["duplicates"]) == (1, 5)
    assert len(list(iter_history(tmp_path / "store"))) == 6


def _contract_events() -> list:
    return [
        DepositPosted(event_id="dep-00000001", customer_id="C000000001", occurred_at="2015-05-01T08:00:00Z",
                      source="core_banking", kind="deposit", amount_minor=500000, channel="counter",
                      branch_id="BR01", balance_after_minor=500000),
        CardPaymentMade(event_id="pos-00000001", customer_id="C000000001", occurred_at="2015-05-02T12:00:00Z",
                        source="card_switch", card_token="tok_abcdefgh12", mcc="7011", hotel_stars=5, luxury=True,
                        amount_minor=250000, online=False, country="FR"),
        ProductPurchased(event_id="buy-00000001", customer_id="C000000002", occurred_at="2015-04-01T00:00:00Z",
                         source="core_banking", product_id="time_deposit_1y", amount_minor=1000000,
                         channel="branch"),
    ]


@pytest.mark.parametrize("form", ["jsonl", "csv", "parquet"])
def test_contract_rows_read_the_same_from_csv_jsonl_and_parquet(tmp_path, capsys, form):
    events = _contract_events()
    rows = [orjson.loads(encode(e)) for e in events]
    path = tmp_path / f"history.{form}"
    if form == "jsonl":
        path.write_bytes(b"\n".join(encode(e) for e in events) + b"\n")
    else:
        names = list(dict.fromkeys(k for r in rows for k in r))
        frame = pl.DataFrame({n: [None if r.get(n) is None else str(r[n]).lower() if isinstance(r.get(n), bool)
                                  else str(r[n]) for r in rows] for n in names})
        if form == "csv":
            frame.write_csv(path)
        else:  # typed columns, as a warehouse writes them
            typed = frame.with_columns(
                pl.col("amount_minor", "balance_after_minor", "hotel_stars", "schema_version").cast(pl.Int64),
                (pl.col("luxury") == "true"), (pl.col("online") == "true"),
                pl.col("occurred_at").str.strptime(pl.Datetime("us", "UTC"), "%Y-%m-%dT%H:%M:%SZ"))
            typed.write_parquet(path)
    summary, refused = run_import(tmp_path, capsys, [path])
    assert refused == [] and summary["imported"] == 3
    want = sorted(encode(e) for e in events)
    assert sorted(iter_history(tmp_path / "store")) == want


def test_one_file_per_type_without_a_type_column(tmp_path, capsys):
    pos = _contract_events()[1]
    row = {k: v for k, v in orjson.loads(encode(pos)).items() if k != "type"}
    path = tmp_path / "pos.csv"
    pl.DataFrame({k: [str(v).lower() if isinstance(v, bool) else str(v)] for k, v in row.items()}).write_csv(path)
    summary, refused = run_import(tmp_path, capsys, [path])
    assert refused == [] and list(iter_history(tmp_path / "store")) == [encode(pos)]


def test_contract_rows_refused_with_the_contracts_reason(tmp_path, capsys):
    good = encode(_contract_events()[0])
    lines = [good,
             good.replace(b'"amount_minor":500000', b'"amount_minor":0'),
             good.replace(b'"C000000001"', b'"C 1 hello world"'),
             b"not json",
             good.replace(b'"dep-00000001"', b'"dep-00000002"').replace(b'"counter"', b'"teleport"')]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    summary, refused = run_import(tmp_path, capsys, [path])
    assert (summary["imported"], summary["rejected"]) == (1, 4)
    assert [(r["row"], r["field"]) for r in refused] == [(2, "amount_minor"), (3, "customer_id"), (4, "record"),
                                                         (5, "channel")]
    assert refused[1]["customer_id"] == "<text, 15 chars>"  # free text never shown
    for reject, line in zip(refused, lines[1:]):
        with pytest.raises(InvalidEvent) as caught:
            decode(line)
        assert reject["field"] == caught.value.field


def test_the_bulk_check_refuses_and_accepts_what_decode_does():
    good = orjson.loads(encode(_contract_events()[1]))
    variants = [good, {**good, "hotel_stars": 6}, {**good, "hotel_stars": "5"}, {**good, "luxury": "yes"},
                {**good, "occurred_at": "2015-05-02T12:00:00"}, {**good, "occurred_at": 1430568000},
                {**good, "mcc": "70a1"}, {**good, "extra": 1}, {**good, "amount_minor": 1.0},
                {k: v for k, v in good.items() if k != "merchant_category"}, {**good, "type": "nope"},
                {**good, "currency": "XXX"}, {**good, "country": "fr"}, {**good, "occurred_at": "2999-01-01T00:00:00Z"}]
    lines = [orjson.dumps(v) for v in variants]
    checked = check_lines(lines)
    refused = {i: (f, r) for i, f, r, _ in checked.refused}
    accepted = checked.valid.column("index").to_pylist()
    for i, line in enumerate(lines):
        try:
            event = decode(line)
        except InvalidEvent as exc:
            assert i in refused and refused[i] == (exc.field, exc.reason), variants[i]
        else:
            assert i in accepted
            assert checked.valid.column("event")[accepted.index(i)].as_py() == encode(event)


def test_history_comes_out_in_time_order_per_customer_across_imports(tmp_path, capsys):
    late, early = _contract_events()[0], _contract_events()[1]
    first = tmp_path / "a.jsonl"
    first.write_bytes(encode(early) + b"\n")
    run_import(tmp_path, capsys, [first])
    older = late.model_copy(update={"event_id": "dep-00000009", "occurred_at": late.occurred_at.replace(year=2010)})
    second = tmp_path / "b.jsonl"
    second.write_bytes(encode(older) + b"\n")
    run_import(tmp_path, capsys, [second])
    assert list(iter_history(tmp_path / "store")) == [encode(older), encode(early)]


def test_the_process_pool_gives_what_one_process_gives(tmp_path, mapping):
    txn = _write_csv(tmp_path / "txn.csv", TXN + [[f"7{i}", "r", str(i), "2019-03-01", "09:00:00", "1.00", "ATM",
                                                  "", "1.00"] for i in range(300)])
    results = []
    for workers in (0, 2):
        store = HistoryStore(tmp_path / f"store{workers}", create=True)
        rejects = RejectsFile(tmp_path / f"rejects{workers}.csv")
        report = Importer(store, rejects, KnownProducts.of(load_catalog()), mapping=load_mapping(mapping),
                          workers=workers, chunk_rows=50).run([txn])
        rejects.close()
        results.append((report.imported, list(store.lines())))
    assert results[0] == results[1] and results[0][0] == 305


def test_a_mapping_that_names_no_such_field_fails_with_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(MAPPING.replace("purpose:", "porpose:"), encoding="utf-8")
    with pytest.raises(HistoryFileError, match="bad.yaml.*porpose"):
        load_mapping(path)
    toml = tmp_path / "bank.toml"
    toml.write_text('[tables.t]\nevent = "deposit"\nkey = ["a"]\n[tables.t.fields]\ncustomer_id = "c"\n')
    with pytest.raises(HistoryFileError, match="deposit events need"):
        load_mapping(toml)


def test_the_example_extract_imports_without_a_reject(tmp_path, capsys):
    example = Path(__file__).resolve().parents[2] / "examples" / "core_banking"
    files = sorted(example.glob("*.csv")) + [example / "contract_events.jsonl"]
    summary, refused = run_import(tmp_path, capsys, files, example / "mapping.yaml")
    assert refused == [] and summary["imported"] == summary["read"] == sum(
        len(f.read_text().splitlines()) - (f.suffix == ".csv") for f in files)


def test_the_bulk_check_applies_the_banks_rules_and_rate_table():
    """An import refuses what the bank's stream would refuse: an id outside its pattern, an event
    before its earliest time, a currency its rate table has no rate for (naming each field)."""
    from datetime import datetime, timezone
    from decimal import Decimal

    from domain.money import ExchangeRates
    from schemas.rules import ContractRules

    good = orjson.loads(encode(_contract_events()[1]))
    good = {**good, "customer_id": "CUST-000123", "occurred_at": "1998-05-02T12:00:00Z", "currency": "EUR"}
    rules = ContractRules(customer_id_pattern=r"CUST-[0-9]{6}",
                          earliest_occurred_at=datetime(1990, 1, 1, tzinfo=timezone.utc))
    rates = ExchangeRates("EUR", (("EUR", Decimal(1)), ("USD", Decimal("0.9"))))
    variants = [good, {**good, "customer_id": "C000000042"}, {**good, "occurred_at": "1989-12-31T00:00:00Z"},
                {**good, "currency": "GBP"}, {**good, "currency": "USD"}]
    checked = check_lines([orjson.dumps(v) for v in variants], rules=rules, rates=rates)
    refused = {i: f for i, f, _, _ in checked.refused}
    assert checked.valid.column("index").to_pylist() == [0, 4]
    assert refused == {1: "customer_id", 2: "occurred_at", 3: "currency"}
    assert "GBP" in next(r for i, _, r, _ in checked.refused if i == 3)
    # what is stored keeps the row's own currency: the fold converts, as the stream does
    assert orjson.loads(checked.valid.column("event")[1].as_py())["currency"] == "USD"


def test_the_bulk_check_judges_merchant_categories_and_future_times_as_decode_does():
    """merchant_category derived from the mcc (or refused with the mcc's reason), and "more than
    24 h ahead" judged against the time the chunk is checked at: the same verdicts as decode."""
    from datetime import datetime, timedelta, timezone

    good = orjson.loads(encode(_contract_events()[1]))
    bare = {k: v for k, v in good.items() if k != "merchant_category"}
    now = datetime.now(timezone.utc)
    variants = [bare, {**bare, "mcc": "5411"}, {**bare, "mcc": "0001"}, {**bare, "mcc": "54x1"},
                {k: v for k, v in bare.items() if k != "mcc"}, {**bare, "mcc": "²²²²"}, {**good, "merchant_category": None},
                {**bare, "customer_id": "C 1"}, {**bare, "occurred_at": (now + timedelta(hours=23)).isoformat()},
                {**bare, "occurred_at": (now + timedelta(hours=25)).isoformat()},
                {**bare, "occurred_at": "2015-05-02T20:00:00+08:00"}]
    lines = [orjson.dumps(v) for v in variants]
    checked = check_lines(lines, now=now)
    refused = {i: (f, r) for i, f, r, _ in checked.refused}
    accepted = checked.valid.column("index").to_pylist()
    for i, line in enumerate(lines):
        try:
            event = decode(line)
        except InvalidEvent as exc:
            assert refused.get(i) == (exc.field, exc.reason), variants[i]
        else:
            assert i in accepted, variants[i]
            assert checked.valid.column("event")[accepted.index(i)].as_py() == encode(event)
            times = checked.valid.column("occurred_at_us")[accepted.index(i)].as_py()
            assert times == (event.occurred_at - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(microseconds=1)
    assert accepted == [0, 1, 2, 8, 10]
    assert [orjson.loads(checked.valid.column("event")[k].as_py())["merchant_category"] for k in range(3)] == [
        "hotel", "groceries", "other"]
    assert refused[3][0] == refused[4][0] == refused[5][0] == "mcc" and refused[9][0] == "occurred_at"
    # judged against the given time, not the clock: a day later the 25 h event is 1 h ahead
    later = check_lines(lines[9:10], now=now + timedelta(days=1))
    assert later.valid.num_rows == 1 and later.refused == []


def test_canonical_lines_are_kept_only_when_they_are_what_encode_writes():
    """A chunk marked canonical keeps its valid lines as they are; one whose lines are not in
    encode's form (a sampled row shows it) has every valid row encoded, as without the mark."""
    from adapters.contract_rows import with_fields

    events = [_contract_events()[0].model_copy(update={"event_id": event_id_for("dep:", str(i))}) for i in range(200)]
    canonical = [encode(e) for e in events]
    kept = check_lines(canonical, canonical=True)
    assert kept.valid.column("event").to_pylist() == canonical and kept.refused == []
    loose = [line.replace(b'T08:00:00Z', b'T08:00:00.000000Z') for line in canonical]  # valid, not canonical
    fixed = check_lines(loose, canonical=True)
    assert fixed.valid.column("event").to_pylist() == canonical
    # with the mapping's columns the rows are the ones the plain check gives
    fields = pa.table({"customer_id": [e.customer_id for e in events],
                       "occurred_at_us": [int(e.occurred_at.timestamp() * 1e6) for e in events],
                       "type": ["deposit"] * 200, "product_id": pa.array([None] * 200, pa.string())})
    assert with_fields(kept.valid, fields, "dep:").equals(check_lines(canonical).valid)


def test_mapped_lines_are_canonical_and_give_the_columns_the_plain_check_gives(tmp_path, mapping, monkeypatch):
    """Every mapped table of the example extract: the lines the mapping writes are byte for byte
    encode of the events they validate to, and the store holds the same rows whether the check
    keeps the lines or encodes each event again."""
    import adapters.history_files as history_files

    example = Path(__file__).resolve().parents[2] / "examples" / "core_banking"
    files = sorted(example.glob("*.csv"))
    txn = _write_csv(tmp_path / "txn.csv", TXN)
    stores = []
    for canonical in (True, False):
        monkeypatch.setattr(history_files, "_canonical", lambda *args, keep=canonical: keep)
        for source, mapping_file in ((files, example / "mapping.yaml"), ([txn], mapping)):
            batches = list(history_files.mapped_batches(path, load_mapping(mapping_file),
                                                        load_mapping(mapping_file).table_for(path))
                           for path in source)
            for chunks in batches:
                for chunk in chunks:
                    assert chunk.canonical is canonical
                    if canonical:
                        checked = check_lines(chunk.lines, chunk.keys, chunk.id_prefix)
                        assert checked.refused == []
                        for raw in checked.valid.column("event").to_pylist():
                            assert encode(decode(raw)) == raw
        store = HistoryStore(tmp_path / f"store-{canonical}", create=True)
        rejects = RejectsFile(tmp_path / f"rejects-{canonical}.csv")
        report = Importer(store, rejects, KnownProducts.of(load_catalog()), mapping=load_mapping(example / "mapping.yaml"),
                          workers=0).run(files)
        rejects.close()
        assert report.rejected == 0
        stores.append(pl.concat(list(store.frames())).drop("seq"))
    assert stores[0].equals(stores[1]) and stores[0].height == sum(len(f.read_text().splitlines()) - 1 for f in files)
    for row in stores[0].iter_rows(named=True):
        event = decode(row["event"])
        assert (row["customer_id"], row["type"], row["event_id"]) == (event.customer_id, event.type, event.event_id)
        assert row["occurred_at_us"] == round(event.occurred_at.timestamp() * 1e6)


def test_decimal_columns_convert_exactly_or_are_refused(tmp_path, capsys, mapping):
    rows = [TXN[0]] + [["6201", f"q{i}", "42", "2019-03-01", "09:00:00", amount, "TLR", "", balance]
                       for i, (amount, balance) in enumerate([("1,234.5", "-7.10"), ("+3", "007.1000"), ("0.01", "1."),
                                                              ("1.234", "1"), ("1e5", "1"), ("5", "1.2.3")])]
    txn = _write_csv(tmp_path / "txn.csv", rows)
    summary, refused = run_import(tmp_path, capsys, [txn], mapping)
    assert (summary["imported"], summary["rejected"]) == (3, 3)
    assert sorted((r["row"], r["field"]) for r in refused) == [(4, "amount_minor"), (5, "amount_minor"),
                                                              (6, "balance_after_minor")]
    stored = sorted((e.amount_minor, e.balance_after_minor) for e in map(decode, iter_history(tmp_path / "store")))
    assert stored == [(1, 100), (300, 710), (123450, -710)]


def test_a_decimal_comma_is_refused_never_read_as_a_thousands_separator(tmp_path, capsys, mapping):
    """A European export writes 12,50 for twelve and a half: it must not become 1,250.00."""
    rows = [TXN[0]] + [["6201", f"c{i}", "42", "2019-03-01", "09:00:00", amount, "TLR", "", "1"]
                       for i, amount in enumerate(["12,50", "1,234,567.25", "1,2345.00", "12,500"])]
    summary, refused = run_import(tmp_path, capsys, [_write_csv(tmp_path / "txn.csv", rows)], mapping)
    assert (summary["imported"], summary["rejected"]) == (2, 2)
    assert sorted(r["row"] for r in refused) == [1, 3]  # data rows, counted from 1
    assert all("comma may only group thousands" in r["reason"] for r in refused)
    stored = sorted(e.amount_minor for e in map(decode, iter_history(tmp_path / "store")))
    assert stored == [1_250_000, 123_456_725]


def test_contract_rules_cross_to_a_worker_whole():
    import pickle
    from datetime import datetime, timezone

    from schemas.rules import UTC, ContractRules

    rules = ContractRules(customer_id_pattern=r"CUST-[0-9]{6}", earliest_occurred_at=datetime(1990, 1, 1, tzinfo=timezone.utc))
    again = pickle.loads(pickle.dumps(rules))
    assert again == rules and again.earliest_utc == rules.earliest_occurred_at and again.earliest_utc.tzinfo is UTC
    assert again.customer_id_narrowing("C1") is not None and again.customer_id_narrowing("CUST-000001") is None
