"""When a starting worker joins its group (``streams.membership.wait_to_join``), on a fake
group and clock, and what the direct engine's rebalance listener commits before giving
partitions up."""

from __future__ import annotations

import asyncio

from bootstrap.settings import load_settings
from streams.core import OffsetCommits
from streams.direct import _Revocations
from streams.membership import join_wait_s, wait_to_join


class Group:
    """Scripted DescribeGroups answers, one per look; the last repeats. Each wait moves the clock."""

    def __init__(self, *views: tuple[str, int]) -> None:
        self.views = list(views)
        self.now = 0.0
        self.looks = 0

    async def describe(self) -> tuple[str, int]:
        self.looks += 1
        return self.views.pop(0) if len(self.views) > 1 else self.views[0]

    async def sleep(self, seconds: float) -> None:
        self.now += seconds

    def clock(self) -> float:
        return self.now

    def wait(self, wait_s: float) -> str:
        return asyncio.run(wait_to_join(self.describe, wait_s, clock=self.clock, sleep=self.sleep, poll_s=0.1))


def test_a_worker_that_finds_no_group_joins_at_once():
    group = Group(("Empty", 0))
    assert group.wait(6.0) == "empty"
    assert group.now == 0.0


def test_a_replacement_waits_for_the_dead_members_expiry_and_joins_that_rebalance():
    group = Group(*[("Stable", 3)] * 58, ("Unknown", 2))  # the dead member's session ends after 5.8 s
    assert group.wait(6.0) == "rebalancing"
    assert 5.7 <= group.now <= 5.9


def test_a_group_that_lost_a_member_between_looks_counts_as_rebalancing():
    group = Group(("Stable", 3), ("Stable", 3), ("Stable", 2))  # the broker's rebalance was over before a look
    assert group.wait(6.0) == "rebalancing"
    assert group.now < 1.0


def test_a_worker_added_to_a_healthy_group_waits_out_the_wait_then_joins():
    group = Group(("Stable", 2))
    assert group.wait(6.0) == "waited"
    assert 6.0 <= group.now <= 6.2


def test_a_group_already_rebalancing_is_joined_at_once():
    assert Group(("PreparingRebalance", 2)).wait(6.0) == "rebalancing"


def test_a_broker_that_will_not_describe_the_group_does_not_stop_the_join():
    async def broken() -> tuple[str, int]:
        raise ConnectionError("no coordinator")

    assert asyncio.run(wait_to_join(broken, 6.0)) == "unknown"


def test_no_wait_asks_nothing():
    group = Group(("Stable", 3))
    assert group.wait(0.0) == "no wait"
    assert group.looks == 0


def test_the_wait_defaults_to_the_session_timeout_and_is_off_with_static_membership(monkeypatch):
    monkeypatch.setenv("NBO_STREAM__SESSION_TIMEOUT_S", "4")
    assert join_wait_s(load_settings().stream) == 4.0
    monkeypatch.setenv("NBO_STREAM__JOIN_WAIT_S", "0")
    assert join_wait_s(load_settings().stream) == 0.0
    monkeypatch.delenv("NBO_STREAM__JOIN_WAIT_S")
    monkeypatch.setenv("NBO_STREAM__INSTANCE_ID", "worker-0")
    assert join_wait_s(load_settings().stream) == 0.0


class Committer:
    def __init__(self) -> None:
        self.commits: list[dict] = []

    async def commit(self, offsets) -> None:
        self.commits.append(dict(offsets))


def test_before_a_revoke_the_settled_offsets_are_committed_and_the_unsettled_forgotten():
    commits: OffsetCommits = OffsetCommits(lag_s=3.0, interval_s=10.0)
    commits.applied({"p0": 100, "p1": 50}, now=0.0)
    commits.applied({"p0": 180}, now=2.0)
    consumer = Committer()
    listener = _Revocations(commits, consumer, clock=lambda: 3.5)  # p0@100 and p1@50 have settled, p0@180 not
    asyncio.run(listener.on_partitions_revoked({"p0", "p1"}))
    assert consumer.commits == [{"p0": 100, "p1": 50}]
    assert commits.pending() == 0  # p0@180 is re-read by the next owner and skipped by the store
    assert commits.due(10.0, final=True) == {}


def test_a_revoke_with_nothing_settled_commits_nothing():
    commits: OffsetCommits = OffsetCommits(lag_s=3.0, interval_s=0.0)
    commits.applied({"p0": 100}, now=0.0)
    consumer = Committer()
    asyncio.run(_Revocations(commits, consumer, clock=lambda: 1.0).on_partitions_revoked({"p0"}))
    assert consumer.commits == []
