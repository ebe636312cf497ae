"""The ports: what the entry points need from the outside world, as small interfaces.

Each has one real adapter in this package and an in-memory fake in ``adapters.fakes``; the
contract tests in ``tests/contract`` run the same assertions against both, so a fake cannot
drift from the real thing.

| port | real adapter | fake |
| --- | --- | --- |
| ``StateStore`` (stream side: apply a batch exactly once, read, scan) | ``redis_store.RedisStateStore`` | ``fakes.MemoryStateStore`` |
| ``StateReader`` (API side: one async read within a time budget) | ``redis_store.AsyncRedisStateStore`` | ``fakes.MemoryStateStore.reader()`` |
| ``EventPublisher`` (outcomes acked by the broker, decisions buffered) | ``kafka_publisher.Publisher`` | ``fakes.MemoryPublisher`` |
| ``ModelSource`` (the promoted model, swapped without restart) | ``model_watch.ModelHolder`` over ``model_registry.ModelRegistry`` | ``fakes.FixedModels`` |
| ``PolicySource`` (marketing's levers, reloaded on change) | ``policy_file.PolicyHolder`` | ``fakes.FixedPolicy`` |

Times are UTC epoch seconds (``now_s``); customer ids are the contract's pseudonymous tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Protocol, Sequence

from decisioning import Decision, Policy
from decisioning.scores import RankingModel
from domain.features import FeatureParams
from domain.state import CustomerState
from schemas.events import Event


@dataclass(frozen=True)
class SourcedEvent:
    """An event with where it came from in the log."""

    event: Event
    topic: str
    partition: int
    offset: int


@dataclass
class ApplyResult:
    applied: int = 0
    redelivered: int = 0  # at or below the stored offset: already applied
    duplicates: int = 0  # same event id seen before at another offset
    conflicts: int = 0  # compare-and-set retries


class StateStore(Protocol):
    """Customer state for the stream engines, replay and tools (synchronous)."""

    def get(self, customer_id: str) -> CustomerState | None:
        """The stored state, or None for a customer never seen."""

    def apply_batch(self, records: Sequence[SourcedEvent], params: FeatureParams, now_s: float) -> ApplyResult:
        """Fold the records into their customers' states, exactly once: a record at or below its
        partition's stored offset, or with an event id already seen, changes nothing. Per
        customer, records keep the order they have in ``records``."""

    def customer_ids(self) -> Iterator[str]:
        """Every customer with a stored state (any order)."""

    def counters(self) -> dict[str, int]:
        """Named operational counters (``dead_letters``, ...)."""

    def count(self, name: str, amount: int = 1) -> None:
        """Add ``amount`` to a named counter."""

    def close(self) -> None: ...


class StateReader(Protocol):
    """Customer state for the offer API (async, one round trip)."""

    async def get(self, customer_id: str) -> CustomerState | None: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


class EventPublisher(Protocol):
    """What the offer API sends to the log."""

    @property
    def connected(self) -> bool: ...

    @property
    def dropped(self) -> int:
        """Decision records dropped (buffer full or refused by the broker), since start."""

    async def start(self, wait_s: float = 10.0) -> None: ...

    async def publish_outcome(self, body: Any) -> str:
        """Publish one ``OfferOutcomeRecorded`` and return its event id once the broker acked it;
        raises ``PublishError`` when it did not (the caller answers 503)."""

    def log_decision(self, decision_id: str, customer_id: str, channel: str, decision: Decision,
                     model_version: str, latency_ms: float, at: Any) -> None:
        """Queue the ``OfferDecisionMade`` audit record; never blocks, never raises."""

    async def close(self) -> None: ...


class ModelSource(Protocol):
    """The model the API ranks with; ``refresh`` swaps in a newly promoted version."""

    current: RankingModel

    @property
    def version(self) -> str: ...

    def refresh(self) -> bool:
        """Load the promoted version if it changed; True if the model was swapped."""


class PolicySource(Protocol):
    """Marketing's policy in force; ``refresh`` swaps in a changed, valid one."""

    current: Policy

    def refresh(self) -> bool:
        """Reload if the source changed; True if the policy was swapped; a bad one is refused."""
