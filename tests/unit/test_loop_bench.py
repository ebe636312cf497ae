"""The loop bench's comparisons of two rankings run on the same traffic (bench/loop.py): paired on
the same visits, on outcomes or on the worth of the shown offers, and per channel."""

from __future__ import annotations

import numpy as np
import pytest

from bench.loop import RunResult, Shown, paired_gain


def runs(worth_online: float, worth_static: float, visits: int = 4000) -> tuple[RunResult, RunResult]:
    """Two runs over the same visits, each showing 3 offers; online's worth ``worth_online`` and
    static's ``worth_static`` acceptances per visit, the outcomes drawn from those chances."""
    rng = np.random.default_rng(3)
    static, online = RunResult("static"), RunResult("online")
    for k in range(visits):
        hour = k * 0.05
        for run, worth in ((online, worth_online), (static, worth_static)):
            accepted = int(rng.random() < worth)
            run.shown.append(Shown(f"d-{run.mode}-{k}", k, "mobile", "treatment", hour, ("a", "b", "c"), accepted,
                                   expected=worth))
    return static, online


def test_the_expected_comparison_finds_a_gain_the_outcomes_leave_in_noise():
    static, online = runs(0.033, 0.030)  # online's offers are worth 10 % more
    worth = paired_gain(static, online, 0.0, expected=True)
    assert worth["lift"] == pytest.approx(0.10, abs=1e-9)
    assert worth["online_accepted"] == pytest.approx(4000 * 0.033)
    drawn = paired_gain(static, online, 0.0)
    assert drawn["high"] - drawn["low"] > 0.2  # about 120 acceptances a run: the draws' noise is wide
    # the chances carry no draw noise: the interval is the width of a point (every visit worth alike)
    assert worth["low"] == pytest.approx(0.10, abs=1e-6) and worth["high"] == pytest.approx(0.10, abs=1e-6)


def test_the_comparison_keeps_only_the_visits_in_its_window():
    static, online = runs(0.02, 0.02, visits=1000)  # hours 0 to 50
    online.shown = [s if s.sim_hour < 25 else Shown(s.decision_id, s.customer, s.channel, s.arm, s.sim_hour,
                                                    s.products, s.accepted, expected=0.04) for s in online.shown]
    before = paired_gain(static, online, -1.0, expected=True, until_hour=25.0)
    after = paired_gain(static, online, 25.0, expected=True)
    assert before["visits"] == 500 and before["lift"] == pytest.approx(0.0)
    assert after["visits"] == 500 and after["lift"] == pytest.approx(1.0)


def test_per_channel_the_worth_per_shown_offer_is_compared_on_each_channels_own_visits():
    from bench.loop import by_channel

    static, online = runs(0.03, 0.03, visits=600)
    teller = [Shown(f"d-t-{k}", 10_000 + k, "teller", "treatment", 30.0, ("a",), 0, expected=0.02) for k in range(300)]
    static.shown += teller
    online.shown += [Shown(s.decision_id, s.customer, s.channel, s.arm, s.sim_hour, s.products, 0, expected=0.03)
                     for s in teller]
    found = by_channel(static, online, 0.0)
    assert found["mobile"]["worth_lift"] == pytest.approx(0.0)
    assert found["teller"]["worth_lift"] == pytest.approx(0.5)  # 0.03 against 0.02 per shown offer
    assert found["teller"]["static"] == {"shown": 300, "accepted": 0, "worth": pytest.approx(6.0)}
    assert "worth_lift" not in found["call_centre"]  # nobody called
