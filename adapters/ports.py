"""The ports: what the entry points need from the outside world, as small interfaces.

Each has one real adapter in this package and an in-memory fake in ``adapters.fakes``; the
contract tests in ``tests/contract`` run the same assertions against both, so a fake cannot
drift from the real thing.

| port | real adapter | fake |
| --- | --- | --- |
| ``StateStore`` (stream side: apply a batch exactly once, read, scan) | ``redis_store.RedisStateStore`` | ``fakes.MemoryStateStore`` |
| ``StateReader`` (API side: one async read within a time budget) | ``redis_store.AsyncRedisStateStore`` | ``fakes.MemoryStateStore.reader()`` |
| ``EventPublisher`` (outcomes acked by the broker, decisions buffered) | ``kafka_publisher.Publisher`` | ``fakes.MemoryPublisher`` |
| ``ModelRegistry`` (versioned artifacts, which one is promoted) | ``model_registry.ModelRegistry`` | ``fakes.MemoryRegistry`` |
| ``ModelSource`` (the promoted model, swapped without restart) | ``model_watch.ModelHolder`` over ``model_registry.ModelRegistry`` | ``fakes.FixedModels`` |
| ``PolicySource`` (marketing's levers, reloaded on change) | ``policy_file.PolicyHolder`` | ``fakes.MemoryPolicySource`` |
| ``CatalogSource`` (the product catalog, reloaded on change) | ``catalog_file.CatalogFile`` | ``fakes.MemoryCatalogSource`` |
| ``DecisionCache`` (recent decisions, to check outcomes against) | ``decision_cache.RedisDecisionCache`` | ``fakes.MemoryDecisionCache`` |
| ``SharedRateLimit`` (one GCRA limit per API key across replicas) | ``shared_control.RedisRateLimit`` | ``fakes.MemoryRateLimit`` |
| ``ControlStore`` (promoted version and policy shared by replicas, with notifications) | ``shared_control.RedisControl`` | ``fakes.MemoryControl`` |
| ``LoopStatsReader`` (the closed loop's live counters per day) | ``redis_store.RedisLoopStats`` | ``fakes.MemoryStateStore.loop_stats()`` |
| ``LearningSource`` (online acceptance evidence, refreshed in the background) | ``learning_reader.RedisLearningReader`` | ``fakes.MemoryLearningSource`` |

Times are UTC epoch seconds (``now_s``); customer ids are the contract's pseudonymous tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Awaitable, Callable, Iterator, Mapping, Protocol, Sequence

from decisioning import Decision, Policy
from decisioning.scores import RankingModel
from domain.catalog import Catalog
from domain.features import FeatureParams
from domain.learning import Evidence
from domain.state import CustomerState
from recommender.model import NboModel
from schemas.events import Event


@dataclass(frozen=True)
class SourcedEvent:
    """An event with where it came from in the log."""

    event: Event
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class LoopUnit:
    """The closed loop's facts (``domain.attribution``) of one customer write, added to the
    shared counters and evidence at most once by ``unit_id``; kept in the customer's outbox
    (field ``version``) until ``StateStore.settle``.

    ``counts``: (UTC day ``YYYY-MM-DD``, counter field, delta); ``answers``: (evidence field,
    accepted, expected (the model propensity of the answered offer), at_s, sign); ``conversions``: ``ConversionAttributed`` records as JSON objects."""

    unit_id: str
    customer_id: str
    version: str
    counts: tuple[tuple[str, str, int], ...] = ()
    answers: tuple[tuple[str, bool, float, float, int], ...] = ()
    conversions: tuple[dict[str, Any], ...] = ()


@dataclass
class ApplyResult:
    applied: int = 0
    redelivered: int = 0  # at or below the stored offset: already applied
    duplicates: int = 0  # same event id seen before at another offset
    conflicts: int = 0  # compare-and-set retries
    #: Loop facts written to customers' outboxes and not settled yet: this batch's, and any found
    #: still there (a writer died before settling them), oldest first per customer.
    units: list[LoopUnit] = field(default_factory=list)


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

    def settle(self, units: Sequence[LoopUnit], now_s: float) -> int:
        """Add the units' counts and answers to the live counters and the online evidence, each
        unit at most once (a unit id seen within the dedupe TTL adds nothing), then empty their
        outbox fields; returns the units added now. Call it after ``apply_batch`` with its
        ``units``, once their conversions are published, on every delivery."""

    def readiness_problems(self) -> list[str]:
        """What keeps the store from writing every customer now, one line each (the server
        does not answer; on a cluster, a node that does not say ``cluster_state:ok``); empty
        when it is ready. Never raises."""

    def close(self) -> None: ...


class StateReader(Protocol):
    """Customer state for the offer API (async, one round trip). An unreachable store raises
    (``redis.exceptions.ConnectionError`` or a timeout); the caller degrades."""

    async def get(self, customer_id: str) -> CustomerState | None:
        """The stored state, or None for a customer never seen."""

    async def ping(self) -> bool:
        """True when the store answers; raises when it does not."""

    async def counters(self) -> dict[str, int]:
        """The stream workers' named counters (``applied``, ``duplicates``, ``dead_letters``)."""

    async def close(self) -> None: ...


class EventPublisher(Protocol):
    """What the offer API sends to the log."""

    @property
    def connected(self) -> bool: ...

    @property
    def dropped(self) -> int:
        """Decision records dropped (buffer full or refused by the broker), since start."""

    @property
    def sent(self) -> int:
        """Decision records the broker acknowledged, since start."""

    async def start(self, wait_s: float = 10.0) -> None:
        """Connect, waiting up to ``wait_s`` seconds; if the broker is not reachable by then, keep
        trying in the background (``connected`` says when it is)."""

    async def publish_outcome(self, body: Any) -> str:
        """Publish one ``OfferOutcomeRecorded`` and return its event id once the broker acked it;
        raises ``PublishError`` when it did not (the caller answers 503).

        ``body`` has ``decision_id``, ``customer_id``, ``product_id``, ``channel``, ``outcome``
        (a ``schemas.events.Outcome``) and ``decline_reason`` (the API's outcome request). The
        event id is ``kafka_publisher.outcome_event_id`` of the decision, product and outcome,
        so a retry of the same outcome carries the same id."""

    def log_decision(self, decision_id: str, customer_id: str, channel: str, decision: Decision,
                     model_version: str, latency_ms: float, at: datetime) -> None:
        """Queue the ``OfferDecisionMade`` audit record; never blocks, never raises."""

    async def close(self) -> None: ...


class ModelRegistry(Protocol):
    """Versioned model artifacts and which version is promoted (current). Every failure —
    a missing or corrupt version, a model trained for another catalog — raises
    ``model_registry.RegistryError`` with a message that says what to do."""

    def save(self, model: NboModel, metadata: Mapping[str, Any] | None = None, version: str | None = None) -> str:
        """Store a new version (not current until promoted) and return its name. ``metadata``
        should hold ``catalog_hash`` (taken from the registry's catalog when missing),
        ``data_window`` and ``metrics``; ``created_at`` (ISO UTC) is added when missing."""

    def versions(self) -> list[str]:
        """Every stored version, sorted by name (default names sort by creation time)."""

    def metadata(self, version: str) -> dict[str, Any]:
        """What ``save`` stored with ``version``, plus ``version``, ``params``, ``product_ids``."""

    def current_version(self) -> str | None:
        """The promoted version, or None when nothing was promoted."""

    def load(self, version: str | None = None, catalog: Catalog | None = None) -> NboModel:
        """Load ``version`` (default: the current one); refused when its catalog hash or product
        order differs from ``catalog`` (or the registry's own catalog)."""

    def promote(self, version: str, catalog: Catalog | None = None, *, forced: bool = False,
                overrode: Sequence[str] = ()) -> None:
        """Make ``version`` current after checking that it loads, and record it in the version's
        metadata (``promotion``: at, ``forced`` past the promotion gate, the reasons ``overrode``)."""


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

    @property
    def refused(self) -> bool:
        """True while the latest change was refused (the policy in force is an older one)."""

    def refresh(self) -> bool:
        """Reload if the source changed; True if the policy was swapped; a bad one is refused."""


class CatalogSource(Protocol):
    """The product catalog in force (``NBO_CATALOG__PATH``); ``refresh`` swaps in a changed, valid
    one. Readers take ``current`` once per request or batch (an attribute read); a catalog is
    never changed in place, a change is a new ``Catalog`` object."""

    current: Catalog

    @property
    def refused(self) -> bool:
        """True while the latest change was refused (the catalog in force is an older one)."""

    @property
    def refusal(self) -> str | None:
        """Why the latest change was refused (``CatalogError``'s message: file, line, column), or None."""

    def refresh(self) -> bool:
        """Reload if the source changed; True if the catalog was swapped (its content differs);
        a change that fails validation is refused and the catalog in force keeps serving."""


class SharedRateLimit(Protocol):
    """One rate limit per API key for all replicas: ``rate_per_s`` sustained, ``burst`` at once."""

    rate_per_s: float
    burst: int

    async def take(self, key_id: str) -> float:
        """Admit one request of ``key_id``: 0.0 if admitted, else the seconds until one would be."""

    async def close(self) -> None: ...


class ControlStore(Protocol):
    """Named values every API replica follows (``model``: the promoted version; ``policy``: the
    levers JSON), and a notification when one changes."""

    def get(self, name: str) -> str | None:
        """The value, or None if none was put."""

    def put(self, name: str, value: str) -> int:
        """Store the value and notify the listeners; returns how many were notified."""

    async def listen(self, on_change: Callable[[str], Awaitable[object]], *, retry_s: float = 1.0,
                     on_subscribed: Callable[[], object] | None = None) -> None:
        """For ever: ``on_change(name)`` for every name once subscribed (catching up), then for
        each change notified."""

    def close(self) -> None: ...


@dataclass(frozen=True)
class RememberedDecision:
    """What an outcome is checked against: who a decision was for, on which channel, which
    products it offered (best first) and when it was made (UTC epoch seconds)."""

    decision_id: str
    customer_id: str
    channel: str
    product_ids: tuple[str, ...]
    at_s: float


class DecisionCache(Protocol):
    """The offer API's recent decisions, kept for ``ttl_s`` seconds after each one was made
    (the outcome window, ``NBO_API__OUTCOME_WINDOW_S``), so that ``POST /v1/outcomes`` can check
    an outcome against the decision it names."""

    @property
    def ttl_s(self) -> float: ...

    @property
    def dropped(self) -> int:
        """Decisions not kept (buffer full, or the store refused them past the retries), since start."""

    def remember(self, decision_id: str, customer_id: str, channel: str, product_ids: tuple[str, ...],
                 at_s: float) -> None:
        """Keep one decision; never blocks, never raises. The write to the shared store is
        buffered and sent off the request (one pipeline every flush interval); until then
        ``lookup`` in this process finds it in the buffer."""

    async def lookup(self, decision_id: str) -> RememberedDecision | None:
        """The decision, or None when no decision of that id was made within the last ``ttl_s``
        seconds. A miss is looked up once more after one flush interval, so a decision another
        replica has not written yet is still found. Raises ``decision_cache.DecisionCacheError``
        when the store cannot answer (the caller answers 503)."""

    async def close(self) -> None:
        """Write what is buffered, then release the connection."""


# --- the closed loop's live counters (stream side) -----------------------------------------------

@dataclass(frozen=True)
class LoopCountRow:
    """The live counters of one (UTC day of showing, product, channel, vs segment, arm, model
    version): offers shown, answers (``declined`` by reason), offers ignored (explicitly or with
    no answer after ``NBO_LOOP__IGNORED_AFTER_S``), purchases attributed to those showings
    (last touch within ``NBO_LOOP__ATTRIBUTION_DAYS``) and those of them accepted at the
    touchpoint. Filed under the day the offer was shown, so a later answer counts for it."""

    day: date
    product_id: str
    channel: str
    segment: str
    arm: str
    model_version: str
    shows: int = 0
    accepted: int = 0
    declined: dict[str, int] = field(default_factory=dict)
    ignored: int = 0
    conversions: int = 0
    conversions_accepted: int = 0

    @property
    def declines(self) -> int:
        return sum(self.declined.values())


class LoopStatsReader(Protocol):
    """The closed loop's live counters, for the effectiveness report (synchronous)."""

    def counts(self, day_from: date, day_to: date) -> list["LoopCountRow"]:
        """Every row of the UTC days ``day_from`` to ``day_to`` (inclusive, at most 400 days),
        sorted by day, product, channel, segment, arm, model version; ``ValueError`` for a
        reversed or longer range."""

    def close(self) -> None: ...


class LearningSource(Protocol):
    """The online evidence of acceptance the chain calibrates with (``decisioning.calibration``),
    as the stream writes it (``adapters.keys.learn_key``: field ``<product id>`` or
    ``<product id>|<segment>`` -> ``Evidence``). Read in the background, never on the request
    path: ``evidence()`` is a dictionary read."""

    def evidence(self) -> Mapping[str, Evidence]:
        """The evidence of the latest successful read (empty before the first one); no I/O. The
        mapping returned is never changed afterwards (a read swaps in a new one)."""

    @property
    def failures(self) -> int:
        """Reads that failed since start (the last evidence read kept serving)."""

    @property
    def read_at_s(self) -> float | None:
        """When the evidence served was read (UTC epoch seconds), or None before the first read."""

    async def refresh(self) -> bool:
        """Read the store once and swap in what it holds; True on success. A failure (store down
        or slow) keeps the evidence served, counts in ``failures`` and returns False, never
        raises. A field whose value is not ``[accepts, others, as_of_s, expected]`` (or the older
        ``[accepts, others, as_of_s]``; finite, counts >= 0) is left out and logged."""

    async def start(self) -> None:
        """Read once (within the read timeout), then keep refreshing in the background."""

    async def close(self) -> None: ...
