"""Off-policy evaluation from the decision log: ``nbo evaluate --ope`` and the promotion check
``nbo promote VERSION --require-ope-not-worse``.

    nbo evaluate --ope --decisions decisions.jsonl --outcomes outcomes.jsonl --events events.jsonl
    nbo evaluate --ope --decisions d.jsonl --outcomes o.jsonl --events e.jsonl --candidate 20261201T...

Reads contract records, one JSON object a line: ``OfferDecisionMade`` (the decisions topic),
``OfferOutcomeRecorded`` (the outcomes topic; any other event in that file counts as a customer
event), and the customer events the states are folded from (``--events``: history, deposits,
hotline, card payments, purchases, profiles; outcomes are taken from ``--outcomes``). The
target is the candidate model (default: the registry's current one, which makes this the check
that the logging is right: its estimate must cover the treatment arm's observed rate), replayed
through the decisioning chain on each customer's state at each decision's time
(``recommender.ope.replay_slates``). Estimates are per shown offer (``recommender.ope``).
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from bootstrap import catalog, feature_params, model_registry
from bootstrap.settings import Settings
from decisioning.policy import load_policy
from recommender.ope import OpeReport, TargetSlate, Unit, evaluate, replay_slates, units_from_logs
from schemas.codec import InvalidEvent, decode


class OpeInputError(ValueError):
    """A log file is missing or holds a record that is not a valid contract record."""


@dataclass(frozen=True)
class OpeRun:
    version: str
    report: OpeReport
    decisions_read: int
    units: list[Unit]
    slates: dict[str, TargetSlate]
    replay: Callable[[str], dict[str, TargetSlate]]  # another registry version's slates on the same log


def read_records(path: Path, what: str) -> Iterator:
    """The validated events of a JSONL file; a bad line raises ``OpeInputError`` naming it."""
    if not path.exists():
        raise OpeInputError(f"{what} {path}: file not found")
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield decode(line.rstrip(b"\n"))
            except InvalidEvent as exc:
                raise OpeInputError(f"{what} {path} line {number}: {exc}") from None


def run_ope(settings: Settings, decisions_path: Path, outcomes_path: Path, events_path: Path | None,
            version: str | None = None, catalog_path: Path | None = None) -> OpeRun:
    """Estimate the acceptance rate of the model ``version`` (default the current one)."""
    served = catalog(settings, catalog_path)
    decisions = [e.model_dump(mode="json") for e in read_records(decisions_path, "--decisions")
                 if e.type == "offer_decision"]
    outcome_events = list(read_records(outcomes_path, "--outcomes"))
    outcomes = [e.model_dump(mode="json") for e in outcome_events if e.type == "offer_outcome"]
    timeline = list(read_records(events_path, "--events")) if events_path is not None else []
    timeline += [e for e in outcome_events if e.type != "offer_decision"]
    registry = model_registry(settings, served)
    version = version or registry.current_version()
    if version is None:
        raise OpeInputError("no current model in the registry; name one with --candidate")
    policy = load_policy(settings.api.levers_file)

    def replay(of: str) -> dict[str, TargetSlate]:
        return replay_slates(timeline, decisions, registry.load(of, served), served, policy, feature_params(settings))

    units = units_from_logs(decisions, outcomes)
    slates = replay(version)
    return OpeRun(version, evaluate(units, slates), len(decisions), units, slates, replay)


def _rate(e) -> str:  # type: ignore[no-untyped-def]
    if e is None or not math.isfinite(e.value):
        return "n/a"
    return f"{e.value:.4f}  [{e.low:.4f}, {e.high:.4f}]"


def print_report(run: OpeRun, as_json: bool) -> None:
    r = run.report
    print(f"off-policy evaluation of model {run.version}: {run.decisions_read:,} decisions read, "
          f"{r.decisions:,} with logged probabilities, {r.units:,} shown offers")
    print("acceptance rate per shown offer, 95 % normal interval")
    print(f"  logged (observed)           {_rate(r.observed)}")
    for arm, estimate in r.by_arm.items():
        print(f"    {arm + ' arm':<26}{_rate(estimate)}   n={estimate.n:,}")
    print(f"  candidate IPS               {_rate(r.ips)}")
    print(f"  candidate SNIPS             {_rate(r.snips)}")
    print(f"  candidate DR (own q)        {_rate(r.dr)}")
    print(f"  candidate agrees with the log on {r.matched:,} of {r.units:,} shown offers; "
          f"effective sample size {r.effective_n:,.0f}")
    if as_json:
        print(json.dumps({"version": run.version, **r.to_json()}))


def evaluate_command(args) -> int:  # type: ignore[no-untyped-def]
    """``nbo evaluate --ope``."""
    from bootstrap import load_settings

    if args.decisions is None or args.outcomes is None:
        print("nbo evaluate --ope: give --decisions and --outcomes (JSONL of the decisions and outcomes topics)",
              file=sys.stderr)
        return 2
    try:
        run = run_ope(load_settings(), args.decisions, args.outcomes, args.events, args.candidate, args.catalog)
    except (OpeInputError, ValueError) as exc:
        print(f"nbo evaluate: {exc}", file=sys.stderr)
        return 2
    print_report(run, args.json)
    return 0


def not_worse_check(settings: Settings, version: str, decisions: Path | None, outcomes: Path | None,
                    events: Path | None, margin: float, catalog_path: Path | None = None) -> tuple[bool, str]:
    """The promotion check: ``version``'s IPS minus the serving (current) model's, both replayed on
    the same log (``recommender.ope.ips_difference``), has a lower bound no lower than
    ``-margin``. Not the treatment arm's observed rate: on a log with a control arm the replay on
    control customers' later states sells more than the treated customers' (docs/LOOP.md), which
    would favour any candidate. Returns (passed, the line to print)."""
    from recommender.ope import ips, ips_difference, not_worse, target_probabilities

    if decisions is None or outcomes is None:
        raise OpeInputError("--require-ope-not-worse needs --decisions and --outcomes (and --events for the states)")
    run = run_ope(settings, decisions, outcomes, events, version, catalog_path)
    if not run.units:
        return False, "the decision log has no decision with logged probabilities to compare with"
    current = model_registry(settings, catalog(settings, catalog_path)).current_version()
    if current is None:
        return False, "no current model to compare the candidate with"
    serving = run.slates if current == version else run.replay(current)
    difference = ips_difference(run.units, run.slates, serving)
    serving_ips = ips([u.accepted for u in run.units], [u.probability for u in run.units],
                      target_probabilities(run.units, serving))
    passed = not_worse(difference, margin)
    line = (f"OPE: candidate {version} IPS {_rate(run.report.ips)} against the serving model {current} "
            f"{_rate(serving_ips)} on the same log: difference {difference.value:+.4f} "
            f"[{difference.low:+.4f}, {difference.high:+.4f}], margin {margin:g}: "
            f"{'not worse' if passed else 'worse'}")
    return passed, line
