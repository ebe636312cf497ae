"""The measured loop, end to end: simulated customers visit the touchpoints of the running
product (its own broker, Redis, stream worker and offer API, started as ``bench/loop.py``
starts them), answer from the truth, and the decision log it leaves is right enough to evaluate
policies off-line: the serving model replayed on the states at decision time, weighted by the
logged probabilities, matches the treatment arm's observed acceptance; and the control arm gets
about its configured share of the decisions."""

from __future__ import annotations

import math

import pytest

from bench.loop import Loop, ope_check, parse_args, train_model

CONTROL_SHARE = 0.2


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("loop")
    args = parse_args(["--customers", "400", "--days", "3", "--train-customers", "1500",
                       "--control-share", str(CONTROL_SHARE), "--seed", "21", "--day-s", "0"])
    registry = work / "models"
    train_model(args, registry)
    result = Loop(args, "static", registry, work).run()
    return result, ope_check(result, registry, None)


def test_a_few_hundred_decisions_were_made_answered_and_logged(logged_run):
    result, ope = logged_run
    assert len(result.shown) >= 300
    assert result.outcomes_posted >= len(result.shown)  # every shown offer was answered
    assert ope["decisions_read"] == result.decided  # the decision log holds every decision the API answered


def test_control_customers_get_about_the_configured_share(logged_run):
    result, _ = logged_run
    arms: dict[int, str] = {}
    for shown in result.shown:
        assert arms.setdefault(shown.customer, shown.arm) == shown.arm, "a customer changed arm within the month"
    customers = len(arms)
    control = sum(arm == "control" for arm in arms.values())
    assert abs(control - CONTROL_SHARE * customers) <= 4 * math.sqrt(CONTROL_SHARE * (1 - CONTROL_SHARE) * customers)


def test_the_serving_model_replayed_on_the_log_matches_the_treatment_arms_observed_rate(logged_run):
    _, ope = logged_run
    assert ope["units"] > 0, ope.get("note")
    replay = ope["replay"]
    assert replay["replayed_identically"] >= 0.95 * replay["treatment_decisions"]
    assert ope["ips_covers_treatment_rate"], (ope["ips"], ope["observed_by_arm"])


def test_nbo_evaluate_ope_and_the_promotion_check_read_the_logged_run(logged_run, tmp_path, monkeypatch, capsys):
    import json

    from schemas.topics import OFFER_DECISIONS, OFFER_OUTCOMES
    from services.cli import main

    result, ope = logged_run
    registry = result.files["events"].parent.parent / "models"
    monkeypatch.setenv("NBO_MODEL__REGISTRY_DIR", str(registry))
    logs = ["--decisions", str(result.files[OFFER_DECISIONS]), "--outcomes", str(result.files[OFFER_OUTCOMES]),
            "--events", str(result.files["events"])]
    assert main(["evaluate", "--ope", *logs, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["ips"]["value"] == ope["ips"]["value"]  # the command and the bench agree
    version = printed["version"]
    # the serving model against itself: passes with a margin as wide as its interval, not with a negative
    # one; --force (past the training-time promotion gate: the bench's model has no verdict) does not
    # override the off-policy check
    assert main(["promote", version, "--require-ope-not-worse", *logs, "--ope-margin", "1", "--force"]) == 0
    assert main(["promote", version, "--require-ope-not-worse", *logs, "--ope-margin", "-1", "--force"]) == 1
    assert "not promoted" in capsys.readouterr().err
