"""The PolicySource contract, against ``MemoryPolicySource`` and the file-watching
``PolicyHolder``: marketing's change is picked up on the next refresh; a bad one is refused and
the policy in force keeps serving until a good one replaces it; a bad first policy stops start."""

from __future__ import annotations

import pytest

from decisioning import PolicyError

GOOD = {"levers": {"bond_fund": 1.5, "loan": 0.8}}
BETTER = {"levers": {"bond_fund": 3.0}, "value_exponent": 0.5}
BAD = {"levers": {"bond_fund": "lots"}}  # a lever must be a number
UNKNOWN_KEY = {"leverz": {"bond_fund": 2.0}}


def test_the_first_policy_serves_and_nothing_changes_without_a_change(policy_backend):
    source = policy_backend.open(GOOD)
    assert dict(source.current.levers) == GOOD["levers"]
    assert source.refused is False
    assert source.refresh() is False
    assert dict(source.current.levers) == GOOD["levers"]


def test_a_good_change_is_picked_up_once(policy_backend):
    source = policy_backend.open(GOOD)
    policy_backend.change(source, BETTER)
    assert source.refresh() is True
    assert dict(source.current.levers) == {"bond_fund": 3.0} and source.current.value_exponent == 0.5
    assert source.refresh() is False


@pytest.mark.parametrize("bad", [BAD, UNKNOWN_KEY], ids=["bad-value", "unknown-key"])
def test_a_bad_change_is_refused_and_the_old_policy_keeps_serving(policy_backend, bad):
    source = policy_backend.open(GOOD)
    before = source.current
    policy_backend.change(source, bad)
    assert source.refresh() is False
    assert source.current == before
    assert source.refused is True  # what /metrics reports as "policy file refused"
    assert source.refresh() is False  # the same bad change is not retried (nor logged) again
    assert source.current == before

    policy_backend.change(source, BETTER)  # fixed
    assert source.refresh() is True
    assert dict(source.current.levers) == {"bond_fund": 3.0}
    assert source.refused is False
    assert source.failed_stamp is None


def test_a_bad_first_policy_stops_the_start(policy_backend):
    with pytest.raises(PolicyError, match="bond_fund"):
        policy_backend.open(BAD)
