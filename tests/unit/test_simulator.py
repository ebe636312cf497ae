"""The simulator writes valid, deterministic events whose planted signals are really there."""

from __future__ import annotations

import argparse
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import orjson
import pytest

from domain.catalog import load_catalog
from simulator.bank import (
    SEGMENTS,
    accept_probability,
    draw_offer_response,
    load_truth,
    simulate,
    simulate_events,
    truth_path_for,
    write_jsonl,
)
from schemas.codec import decode, encode
from schemas.events import CustomerProfileUpdated
from services.commands import simulate as command

LOAN_PRODUCTS = {"consumer_loan", "car_loan", "small_business_loan", "agri_loan", "home_equity_loan"}
START = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


@pytest.fixture(scope="module")
def small(catalog):
    return simulate(catalog, customers=300, days=7, seed=3)


@pytest.fixture(scope="module")
def month(catalog):
    """20,000 customers x 30 days, parsed: the sample the statistical checks run on."""
    result = simulate(catalog, customers=20_000, days=30, seed=11)
    events = [orjson.loads(line) for line in result.lines]
    return result, events


def test_every_event_validates_and_is_written_in_canonical_form(small) -> None:
    assert len(small.lines) > 3000
    for line in small.lines:
        event = decode(line.encode())
        assert encode(event).decode() == line
    assert set(small.events_by_type) == {"profile", "deposit", "hotline", "pos", "purchase"}
    assert all(count > 0 for count in small.events_by_type.values())


def test_each_customer_starts_with_a_profile_and_time_never_goes_back(small) -> None:
    seen: dict[str, datetime] = {}
    for line in small.lines:
        event = decode(line.encode())
        if event.customer_id not in seen:
            assert isinstance(event, CustomerProfileUpdated), event.customer_id
        else:
            assert event.occurred_at >= seen[event.customer_id]
        assert event.occurred_at.utcoffset() == timedelta(0)
        seen[event.customer_id] = event.occurred_at
    assert sorted(seen) == [f"C{i:09d}" for i in range(300)]
    ids = [orjson.loads(line)["event_id"] for line in small.lines]
    assert len(set(ids)) == len(ids)


def test_window_events_fall_inside_the_simulated_days_in_time_order(small) -> None:
    times = [decode(line.encode()).occurred_at for line in small.lines]
    history = sum(t < START for t in times)
    assert all(t < START for t in times[:history])  # the backdated history comes first
    window = times[history:]
    assert len(window) > 1000 and window == sorted(window)
    assert START <= window[0] and window[-1] < START + timedelta(days=7)


def test_same_seed_same_bytes_and_other_seed_other_world(catalog, small) -> None:
    again = simulate(catalog, customers=300, days=7, seed=3)
    assert again.lines == small.lines
    assert np.array_equal(again.truth.propensity, small.truth.propensity)
    assert np.array_equal(again.truth.holdout_pairs, small.truth.holdout_pairs)
    other = simulate(catalog, customers=300, days=7, seed=4)
    assert other.lines != small.lines


def test_write_jsonl_and_truth_files_are_byte_identical_across_runs(catalog, tmp_path: Path) -> None:
    outputs = []
    for name in ("a", "b"):
        directory = tmp_path / name
        directory.mkdir()
        summary = write_jsonl(directory / "events.jsonl", catalog, 200, 3, seed=5, holdout_days=7, progress=False)
        assert summary.truth_path == directory / "events.truth.npz"
        outputs.append([(directory / f).read_bytes() for f in ("events.jsonl", "events.truth.npz", "events.truth.json")])
    assert outputs[0] == outputs[1]
    lines = outputs[0][0].decode().splitlines()
    assert len(lines) == summary.events


def test_truth_file_round_trips_with_documented_shapes(catalog, small, tmp_path: Path) -> None:
    path = truth_path_for(tmp_path / "events.jsonl")
    assert path.name == "events.truth.npz"
    small.truth.save(path)
    truth = load_truth(path.with_suffix(".json"))
    C, P = 300, len(catalog)
    assert truth.customer_ids[42] == "C000000042" and truth.customer_ids.shape == (C,)
    assert truth.product_ids == catalog.ids
    assert truth.propensity.shape == (C, P) and truth.propensity.dtype == np.float32
    assert ((truth.propensity >= 0) & (truth.propensity <= 1)).all()
    assert truth.holdout_pairs.shape[1] == 2 and truth.holdout_pairs.dtype == np.int32
    assert len(truth.holdout_day) == len(truth.holdout_pairs)
    assert truth.holdout_day.max() < 14 and len(truth.holdout_pairs) > 5
    assert truth.segment_names == SEGMENTS and truth.segment.max() < len(SEGMENTS)
    assert truth.meta["cutoff"] == "2026-01-08T00:00:00Z" and truth.meta["catalog_hash"] == catalog.content_hash()
    assert truth.propensity_of("C000000007", "mortgage") == float(truth.propensity[7, catalog.index["mortgage"]])


def test_holdout_purchases_were_possible_at_the_cutoff(month) -> None:
    # Almost every holdout purchase had a positive propensity at the cutoff; the rest became
    # eligible during the holdout (a windfall crossed a minimum, a first credit card was opened).
    truth = month[0].truth
    c, j = truth.holdout_pairs[:, 0], truth.holdout_pairs[:, 1]
    assert (truth.propensity[c, j] > 0).mean() > 0.9


def test_oracle_beats_popularity_on_holdout_purchases(month, catalog) -> None:
    truth = month[0].truth
    C, P = truth.propensity.shape
    labels = np.zeros((C, P), bool)
    labels[truth.holdout_pairs[:, 0], truth.holdout_pairs[:, 1]] = True
    users = np.nonzero(labels.any(1))[0]
    assert len(users) > 1000

    def ndcg3(scores: np.ndarray) -> float:
        top = np.argsort(-scores[users], axis=1, kind="stable")[:, :3]
        gains = (labels[users[:, None], top] / np.log2(np.arange(2, 5))).sum(1)
        ideal = np.array([(1 / np.log2(np.arange(2, 2 + min(k, 3)))).sum() for k in labels[users].sum(1)])
        return float((gains / ideal).mean())

    popularity = np.tile(labels.sum(0).astype(float), (C, 1))  # even knowing the holdout counts
    assert ndcg3(truth.propensity) > 1.5 * ndcg3(popularity)


def test_holdings_are_skewed_like_a_real_bank(month) -> None:
    held = month[0].truth.held_at_cutoff
    share = held.sum(0) / held.sum()
    assert np.sort(share)[::-1][:4].sum() > 0.5
    rate = held.mean(0)
    ids = month[0].truth.product_ids
    assert rate[ids.index("demand_deposit")] == 1.0
    assert rate[ids.index("mobile_banking")] > 0.6 and rate[ids.index("wealth_r5")] < 0.01


def _customer_assets(events) -> dict[str, int]:
    assets: dict[str, int] = {}
    for e in events:
        if e["type"] == "deposit":
            assets[e["customer_id"]] = e["balance_after_minor"]
    return assets


def test_hotel_tier_rises_with_assets(month) -> None:
    events = month[1]
    assets = _customer_assets(events)
    stays = [(assets[e["customer_id"]], e["hotel_stars"]) for e in events
             if e["type"] == "pos" and e["merchant_category"] == "hotel"]
    assert len(stays) > 500
    stays.sort()
    quartiles = np.array_split(np.array([s for _, s in stays], dtype=float), 4)
    means = [q.mean() for q in quartiles]
    assert means == sorted(means) and means[3] - means[0] > 1.0
    assert all(1 <= s <= 5 for _, s in stays)


def test_loan_inquiries_precede_loan_purchases(month) -> None:
    events = month[1]
    window_start = "2026-01-01T00:00:00Z"
    inquiries: dict[str, list[str]] = defaultdict(list)
    bought_after: list[bool] = []
    mortgage_after: list[bool] = []
    for e in events:  # events are in time order within the window
        if e["occurred_at"] < window_start:
            continue
        if e["type"] == "hotline" and e["intent"] in ("loan_inquiry", "mortgage_inquiry"):
            inquiries[e["customer_id"]].append(e["intent"])
        elif e["type"] == "purchase" and e["product_id"] in LOAN_PRODUCTS:
            bought_after.append("loan_inquiry" in inquiries[e["customer_id"]])
        elif e["type"] == "purchase" and e["product_id"] == "mortgage":
            mortgage_after.append("mortgage_inquiry" in inquiries[e["customer_id"]])
    assert len(bought_after) > 100 and len(mortgage_after) > 10
    base_rate = sum("loan_inquiry" in v for v in inquiries.values()) / 20_000
    assert base_rate < 0.1
    assert np.mean(bought_after) > 0.5 > 5 * base_rate
    assert np.mean(mortgage_after) > 0.4


def test_large_inflows_precede_cd_and_wealth_purchases(month) -> None:
    events = month[1]
    inflow: set[str] = set()
    after, total = 0, 0
    for e in events:
        if e["occurred_at"] < "2026-01-01T00:00:00Z":
            continue
        if e["type"] == "deposit" and e["kind"] == "deposit" and e["purpose"] == "transfer" \
                and e["amount_minor"] >= 5_000_000:
            inflow.add(e["customer_id"])
        elif e["type"] == "purchase" and e["product_id"] in ("large_cd", "large_cd_3y"):
            total += 1
            after += e["customer_id"] in inflow
    assert total > 30
    assert after / total > 0.4 and len(inflow) / 20_000 < 0.1


@pytest.mark.parametrize(
    ("key", "target"),
    [("payroll_service", "credit_card_standard"), ("mortgage", "home_insurance"), ("bond_fund", "fund_sip"),
     ("mixed_fund", "fund_sip"), ("credit_card_standard", "card_instalment")],
)
def test_co_ownership_pairs_are_over_represented(month, key: str, target: str) -> None:
    truth = month[0].truth
    held = truth.held_at_cutoff
    a, b = held[:, truth.product_ids.index(key)], held[:, truth.product_ids.index(target)]
    lift = (a & b).mean() / (a.mean() * b.mean())
    assert lift > 1.5, (key, target, lift)


def test_segments_have_realistic_proportions(month) -> None:
    segment = month[0].truth.segment
    share = np.bincount(segment, minlength=len(SEGMENTS)) / len(segment)
    assert abs(share[SEGMENTS.index("mass")] - 0.40) < 0.02
    assert 0.01 < share[SEGMENTS.index("high_net_worth")] < 0.03


def test_offer_response_model() -> None:
    assert accept_probability(0.0, "teller") == 0.0
    p = np.array([0.01, 0.05, 0.2])
    for channel in ("teller", "call_centre", "mobile"):
        a = accept_probability(p, channel)
        assert (np.diff(a) > 0).all() and (a > p).all() and (a <= 0.95).all()
    assert accept_probability(0.1, "teller") > accept_probability(0.1, "call_centre") > accept_probability(0.1, "mobile")
    rng = np.random.default_rng(0)
    answers = [draw_offer_response(0.3, "teller", rng) for _ in range(500)]
    accepted = sum(o == "accepted" for o, _ in answers) / 500
    assert abs(accepted - accept_probability(0.3, "teller")) < 0.07
    assert all((r is None) == (o != "declined") for o, r in answers)


def test_simulate_events_returns_models_in_the_same_order(catalog, small) -> None:
    events = list(simulate_events(catalog, customers=300, days=7, seed=3))
    assert [encode(e).decode() for e in events] == small.lines


def _args(**overrides) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    argv = []
    for key, value in overrides.items():
        flag = "--" + key.replace("_", "-")
        argv += [flag] if value is True else [flag, str(value)]
    return parser.parse_args(argv)


def test_command_writes_the_same_validated_bytes_twice(tmp_path: Path, capsys) -> None:
    first, second = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    for out in (first, second):
        assert command.run(_args(customers=150, days=3, seed=1, out=out, quiet=True)) == 0
    assert first.read_bytes() == second.read_bytes()
    assert (tmp_path / "one.truth.npz").read_bytes() == (tmp_path / "two.truth.npz").read_bytes()
    assert (tmp_path / "one.truth.json").exists()
    printed = capsys.readouterr().out
    assert "(all validated)" in printed and "purchase" in printed


def test_command_start_now_ends_now_and_refuses_the_future(tmp_path: Path, capsys) -> None:
    out = tmp_path / "live.jsonl"
    before = datetime.now(timezone.utc)
    assert command.run(_args(customers=50, days=2, start="now", out=out, quiet=True)) == 0
    times = [decode(line).occurred_at for line in out.read_bytes().splitlines()]
    assert max(times) <= datetime.now(timezone.utc)
    assert max(times) > before - timedelta(days=1)
    future = (datetime.now(timezone.utc) + timedelta(days=30)).date().isoformat()
    assert command.run(_args(customers=50, days=2, start=future, out=tmp_path / "f.jsonl", quiet=True)) == 2
    assert "in the future" in capsys.readouterr().err
    assert command.run(_args(customers=50, days=2)) == 2
    assert command.run(_args(customers=50, days=2, start="yesterday", out=out)) == 2


def test_a_purchase_raises_the_related_hazards_for_weeks_then_fades(catalog) -> None:
    from simulator.bank import Simulator, _AFTER_PURCHASE_HALF_LIFE_DAYS

    sim = Simulator(catalog, customers=3000, seed=5)
    mortgage, insurance = catalog.index["mortgage"], catalog.index["home_insurance"]
    ok = sim.static_ok[:, insurance] & ~sim.held[:, insurance] & ~sim.held[:, mortgage]
    c = int(np.nonzero(ok)[0][0])
    rows = np.array([c])
    before = float(sim.hazard(rows)[0, insurance])
    sim._kick_after(rows, np.array([mortgage]))
    right_after = float(sim.hazard(rows)[0, insurance])
    assert right_after > before + 0.005  # a mortgage makes home insurance far more likely at once
    for _ in range(int(_AFTER_PURCHASE_HALF_LIFE_DAYS)):
        sim._fade_after()
    faded = float(sim.hazard(rows)[0, insurance])
    assert faded - before == pytest.approx(0.5 * (right_after - before), rel=1e-3)


def test_only_a_first_credit_card_plants_the_instalment_plan(catalog) -> None:
    from simulator.bank import Simulator

    sim = Simulator(catalog, customers=3000, seed=5)
    card, instalment = catalog.index["credit_card_gold"], catalog.index["card_instalment"]
    has_card = sim.held[:, sim.is_credit_card].any(axis=1) & ~sim.held[:, card]
    no_card = ~sim.held[:, sim.is_credit_card]
    first, second = int(np.nonzero(no_card)[0][0]), int(np.nonzero(has_card)[0][0])
    sim._kick_after(np.array([first, second]), np.array([card, card]))
    assert sim.after[first, instalment] > 0 and sim.after[second, instalment] == 0


def test_truth_records_the_planted_after_purchase_signal(small, tmp_path: Path) -> None:
    path = tmp_path / "t.truth.npz"
    small.truth.save(path)
    truth = load_truth(path)
    assert truth.after_hazard is not None and truth.after_hazard.shape == truth.propensity.shape
    assert truth.meta["after_purchase"]["mortgage"]["home_insurance"] > 0
    assert truth.meta["after_purchase_half_life_days"] > 0


def test_planted_pairs_are_bought_in_the_weeks_after_the_key(month, catalog) -> None:
    """Within 14 days of buying a key product, its targets are bought several times more often per
    day than by customers who have held the key since before the simulated days."""
    from simulator.bank import _AFTER_PURCHASE

    events = month[1]
    cutoff_s = datetime(2026, 1, 31, tzinfo=timezone.utc).timestamp()
    start_s = START.timestamp()
    bought: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for e in events:
        if e["type"] == "purchase":
            at = datetime.fromisoformat(e["occurred_at"].replace("Z", "+00:00")).timestamp()
            bought[e["customer_id"]][e["product_id"]].append(at)
    recent_events = recent_days = holder_events = holder_days = 0.0
    for products in bought.values():
        for key, targets in _AFTER_PURCHASE.items():
            times = products.get(key, [])
            if not times:
                continue
            for target in targets:
                seen = [t for t in products.get(target, []) if t >= start_s]
                live = [t for t in times if t >= start_s]
                if live:
                    t0, t1 = live[0], min(live[0] + 14 * 86_400, cutoff_s)
                    recent_days += (t1 - t0) / 86_400
                    recent_events += any(t0 < t < t1 for t in seen)
                elif min(times) < start_s and not any(t < start_s for t in products.get(target, [])):
                    holder_days += 30
                    holder_events += bool(seen)
    assert recent_events > 20 and holder_days > 1000
    assert recent_events / recent_days > 5 * (holder_events + 1) / holder_days
