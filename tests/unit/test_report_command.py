"""``nbo report`` on the fake counters: the table, ``--json`` (the API's shape) and ``--png``; a
bad range or day stops it with a message that says what to fix, before anything is read."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest

from adapters.fakes import MemoryStateStore
from adapters.ports import SourcedEvent
from domain.catalog import load_catalog
from domain.features import FeatureParams
from recommender.effectiveness import effectiveness
from reportkit import days_ago, effect_records, oracle_rows
from schemas.codec import decode
from services import cli
from services.commands import report as command

START = days_ago(15)
RECORDS = effect_records(300, seed=8, first=710_000_000, start=START)
SPAN = ["--from", START.date().isoformat(), "--to", (START.date() + timedelta(days=14)).isoformat()]


@pytest.fixture
def counters(monkeypatch):
    store = MemoryStateStore()
    events = [SourcedEvent(decode(r.value), r.topic, 0, i) for i, r in enumerate(RECORDS)]
    store.settle(store.apply_batch(events, FeatureParams(), time.time()).units, time.time())
    monkeypatch.setattr(command, "loop_stats", lambda settings: store.loop_stats())
    return store


def test_the_table_shows_the_headline_and_every_product(counters, capsys):
    assert cli.main(["report", *SPAN]) == 0
    out = capsys.readouterr().out
    want = effectiveness(oracle_rows(RECORDS), load_catalog(), START.date(), START.date() + timedelta(days=14))
    assert f"shows {want.overall.total.shows:,} (treatment {want.overall.treatment.shows:,}" in out
    assert f"verdict: {want.lift.text}" in out
    for product in ("fund_sip", "credit_card_gold", "consumer_loan", "accident_insurance"):
        assert f"\n{product} " in out
    assert "By channel" in out and "By segment" in out and "By model version" in out


def test_json_is_the_report_the_api_answers(counters, capsys):
    assert cli.main(["report", *SPAN, "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    want = effectiveness(oracle_rows(RECORDS), load_catalog(), START.date(), START.date() + timedelta(days=14))
    assert body == json.loads(json.dumps(want.to_dict()))


def test_png_writes_a_chart(counters, tmp_path, capsys):
    chart = tmp_path / "report.png"
    assert cli.main(["report", *SPAN, "--png", str(chart)]) == 0
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and chart.stat().st_size > 20_000
    assert f"chart written to {chart}" in capsys.readouterr().err


def test_a_reversed_or_long_range_stops_before_reading(monkeypatch, capsys):
    monkeypatch.setattr(command, "loop_stats", lambda settings: pytest.fail("read despite a bad range"))
    assert cli.main(["report", "--from", "2026-05-10", "--to", "2026-05-01"]) == 2
    assert "nbo report: --to (2026-05-01) is before --from (2026-05-10): give from <= to" in capsys.readouterr().err
    assert cli.main(["report", "--from", "2024-05-10", "--to", "2026-05-01"]) == 2
    assert "a report covers at most 400: narrow from/to" in capsys.readouterr().err


def test_a_malformed_day_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as stopped:
        cli.main(["report", "--from", "1/5/2026"])
    assert stopped.value.code == 2
    assert "'1/5/2026' is not a day: write it as YYYY-MM-DD" in capsys.readouterr().err


def test_counters_that_cannot_be_read_say_where_they_were_looked_for(monkeypatch, capsys):
    class Down:
        def counts(self, day_from, day_to):
            raise ConnectionError("Connection refused")

        def close(self) -> None:
            pass

    monkeypatch.setattr(command, "loop_stats", lambda settings: Down())
    assert cli.main(["report"]) == 1
    err = capsys.readouterr().err
    assert "the loop counters could not be read from" in err and "ConnectionError: Connection refused" in err
