"""The composition root: every process builds its parts here, from one ``Settings``.

Entry points (the API's lifespan, both stream engines, replay, train, demo) call one ``build_*``
function and get the real adapters wired together; nothing here runs at import time, and
nothing else reads the environment. Tests build the same parts around the fakes of
``adapters.fakes`` instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from adapters.catalog_file import CatalogFile, StaticCatalog
from adapters.decision_cache import RedisDecisionCache
from adapters.kafka_publisher import Publisher
from adapters.learning_reader import NoEvidence, RedisLearningReader
from adapters.model_registry import ModelRegistry
from adapters.model_watch import ModelHolder
from adapters.policy_file import PolicyHolder
from adapters.ports import (
    CatalogSource,
    ControlStore,
    DecisionCache,
    EventPublisher,
    LearningSource,
    LoopStatsReader,
    ModelSource,
    PolicySource,
    SharedRateLimit,
    StateReader,
)
from adapters.redis_store import AsyncRedisStateStore, RedisLoopStats, RedisStateStore
from adapters.shared_control import ControlledPolicy, ControlledRegistry, RedisControl, RedisRateLimit
from bootstrap.connections import aiokafka_options, redis_security
from bootstrap.settings import Settings, SettingsError
from decisioning import LoopParams, PolicyError
from domain.catalog import Catalog, CatalogError, load_catalog
from domain.features import FeatureParams
from domain.money import ExchangeRates, RateTableError, load_rates
from recommender.model import ModelParams
from schemas.rules import DEFAULT_RULES, ContractRules


def require_servers(settings: Settings, what: str) -> tuple[str, str]:
    """(Kafka bootstrap, Redis URL) or a start-up error naming the missing variables."""
    missing = [name for name, value in (("NBO_KAFKA__BOOTSTRAP", settings.kafka.bootstrap),
                                        ("NBO_REDIS__URL", settings.redis.url)) if value is None]
    if missing:
        raise SettingsError(f"{what} needs {' and '.join(missing)} (nbo demo and nbo servers set them)")
    return settings.kafka.bootstrap, settings.redis.url  # type: ignore[return-value]


def feature_params(settings: Settings) -> FeatureParams:
    """The fold's parameters (half-lives, the large-inflow threshold, the rates into the base
    currency); the stream, the API and training must use the same ones. A bad rate table stops
    the start naming ``NBO_MONEY__RATES_FILE``."""
    s = settings.stream
    return FeatureParams(
        inflow_half_life_days=s.inflow_half_life_days,
        spend_half_life_days=s.spend_half_life_days,
        hotline_half_life_days=s.hotline_half_life_days,
        token_half_life_days=s.token_half_life_days,
        large_inflow_minor=settings.money.large_inflow_minor,
        rates=exchange_rates(settings),
        attribution_days=settings.loop.attribution_days,
        ignored_after_s=float(settings.loop.ignored_after_s),
    )


def exchange_rates(settings: Settings) -> ExchangeRates:
    """The rate table of ``NBO_MONEY__RATES_FILE`` (default: the packaged one, into CNY) into
    ``NBO_MONEY__BASE_CURRENCY``; a bad or mismatched table raises ``SettingsError`` naming them."""
    try:
        return load_rates(settings.money.rates_file, settings.money.base_currency)
    except RateTableError as exc:
        raise SettingsError(f"NBO_MONEY__RATES_FILE (base currency NBO_MONEY__BASE_CURRENCY="
                            f"{settings.money.base_currency}): {exc}") from None


def contract_rules(settings: Settings) -> ContractRules:
    """The bank's contract rules from ``NBO_CONTRACT__*``: what the stream's decoding and the offer
    API check customer ids and event times against."""
    c = settings.contract
    return ContractRules(customer_id_pattern=c.customer_id_pattern, refuse_card_numbers=c.refuse_card_numbers,
                         earliest_occurred_at=c.earliest_occurred_at)


def model_params(settings: Settings, override: str | None = None) -> ModelParams:
    """Training parameters from ``NBO_MODEL__*``; ``override`` is a JSON object (from ``nbo tune``)."""
    m = settings.model
    params = ModelParams(factors=m.factors, l2=m.l2, window_days=m.window_days,
                         half_life_days=m.similar_half_life_days, similar_weight=m.similar_weight)
    if override:
        data = params.to_dict()
        data.update(json.loads(override))
        params = ModelParams.from_dict(data)
    return params


def catalog(settings: Settings, path: Path | None = None) -> Catalog:
    """The product catalog a process serves: ``path`` if given (a command's ``--catalog``), else
    ``NBO_CATALOG__PATH``, else the packaged one. A bad file given by ``path`` raises
    ``CatalogError``; one named by the setting stops the start with ``SettingsError``, the
    variable, the file, the line and the column in the message."""
    if path is not None:
        return load_catalog(path)
    return catalog_source(settings).current


def catalog_source(settings: Settings) -> CatalogFile:
    """The catalog file of ``NBO_CATALOG__PATH`` (default: the packaged one), watched for changes
    by the API and the stream workers every ``NBO_CATALOG__POLL_S``; a bad file at start raises
    ``SettingsError`` naming the variable, the file, the line and the column."""
    try:
        return CatalogFile(settings.catalog.path)
    except CatalogError as exc:
        raise SettingsError(f"NBO_CATALOG__PATH: {exc}") from None


def state_store(settings: Settings) -> RedisStateStore:
    """The stream side's state store (synchronous, exactly-once apply)."""
    _, url = require_servers(settings, "the state store")
    return RedisStateStore(url, settings.redis.key_prefix, settings.stream.dedupe_ttl_s,
                           cache_size=settings.stream.state_cache_size, mode=settings.redis.mode,
                           security=redis_security(settings.redis),
                           evidence_half_life_days=settings.loop.evidence_half_life_days)


def loop_stats(settings: Settings) -> RedisLoopStats:
    """The closed loop's live counters (``LoopStatsReader``), for the effectiveness report."""
    _, url = require_servers(settings, "the loop counters")
    return RedisLoopStats(url, settings.redis.key_prefix, mode=settings.redis.mode,
                          security=redis_security(settings.redis))


def control_store(settings: Settings) -> RedisControl:
    """The promoted model version and marketing policy the API replicas share (``nbo promote``,
    ``nbo levers push`` write; the API follows them with ``NBO_API__CONTROL_SOURCE=redis``)."""
    _, url = require_servers(settings, "the shared control values")
    return RedisControl(url, settings.redis.key_prefix, mode=settings.redis.mode,
                        security=redis_security(settings.redis))


def history_state_store(settings: Settings) -> RedisStateStore:
    """The state store ``nbo import --to-redis`` writes: the stream's, on Redis alone (no broker)."""
    if settings.redis.url is None:
        raise SettingsError("nbo import --to-redis needs NBO_REDIS__URL (nbo servers prints it)")
    # No outbox: history is the state to start from, not live answers to count.
    return RedisStateStore(settings.redis.url, settings.redis.key_prefix, settings.stream.dedupe_ttl_s,
                           mode=settings.redis.mode, outbox=False)


def history_dir(settings: Settings) -> Path:
    """The training store ``nbo import`` writes and ``nbo train --history`` reads by default."""
    return settings.data_dir / "history"


def model_registry(settings: Settings, catalog: Catalog | None = None, root: Path | None = None) -> ModelRegistry:
    return ModelRegistry(root or settings.registry_dir, catalog)


def trainer_registry(settings: Settings, catalog: Catalog | None = None,
                     root: Path | None = None) -> ModelRegistry | ControlledRegistry:
    """The registry a trainer saves and promotes to; with ``NBO_API__CONTROL_SOURCE=redis`` a
    promotion is also announced to the API replicas (as ``nbo promote`` does)."""
    files = model_registry(settings, catalog, root)
    return ControlledRegistry(files, control_store(settings)) if settings.api.control_source == "redis" else files


def loop_params(settings: Settings) -> LoopParams:
    """The decision side of the closed loop from ``NBO_LOOP__*`` (docs/LOOP.md): the control arm
    and online learning; a bad value stops the start naming its variable."""
    loop = settings.loop
    try:
        return LoopParams(
            control_share=loop.control_share, control_share_by_channel=dict(loop.control_share_by_channel),
            control_salt=loop.control_salt, control_no_offer_channels=frozenset(loop.control_no_offer_channels),
            explore_channels=frozenset(loop.explore_channels), starting_evidence=loop.starting_evidence,
            segment_min_evidence=loop.segment_min_evidence, evidence_half_life_days=loop.evidence_half_life_days)
    except ValueError as exc:
        name = str(exc).split(":", 1)[0].split(".", 1)[0].upper()
        raise SettingsError(f"NBO_LOOP__{name}: {exc}") from None


@dataclass
class ApiParts:
    """What the offer API's routes use, typed by the ports of ``adapters.ports``: ``build_api``
    fills them with the real adapters, tests with the fakes of ``adapters.fakes``."""

    settings: Settings
    catalog: Catalog  # the catalog at start; the routes read ``catalogs.current``
    store: StateReader
    models: ModelSource
    publisher: EventPublisher
    policies: PolicySource
    params: FeatureParams
    decisions: DecisionCache
    catalogs: CatalogSource | None = None  # None: ``catalog`` never changes
    rate_limit: SharedRateLimit | None = None  # None: each replica's own bucket (NBO_API__RATE_LIMIT=local)
    control: ControlStore | None = None  # None: files (NBO_API__CONTROL_SOURCE=files), nothing to listen to
    contract: ContractRules = DEFAULT_RULES  # the customer ids the routes accept
    learning: LearningSource | None = None  # None: nothing learned online (rank by the model)
    loop_stats: LoopStatsReader | None = None  # None: no effectiveness report (its route answers 503)

    def __post_init__(self) -> None:
        if self.catalogs is None:
            self.catalogs = StaticCatalog(self.catalog)
        if self.learning is None:
            self.learning = NoEvidence()


def build_api(settings: Settings) -> ApiParts:
    kafka, redis_url = require_servers(settings, "nbo api")
    catalogs = catalog_source(settings)
    served = catalogs.current
    security = redis_security(settings.redis)
    try:
        levers: PolicyHolder = PolicyHolder(settings.api.levers_file)
    except PolicyError as exc:
        raise SettingsError(f"NBO_API__LEVERS_FILE: {exc}") from None
    registry = model_registry(settings, served)
    control = rate_limit = None
    policies: PolicySource = levers
    models_from: ModelRegistry | ControlledRegistry = registry
    if settings.api.control_source == "redis":
        control = control_store(settings)
        models_from = ControlledRegistry(registry, control)
        policies = ControlledPolicy(control, levers)
        policies.refresh()  # the pushed policy, if Redis answers; else the file's until it does
    if settings.api.rate_limit == "shared":
        rate_limit = RedisRateLimit(redis_url, settings.redis.key_prefix, settings.api.rate_per_s,
                                    settings.api.rate_burst, mode=settings.redis.mode, security=security,
                                    timeout_s=max(settings.api.rate_limit_budget_ms / 1000, 0.05))
    loop_params(settings)  # a bad NBO_LOOP__* value stops the start here
    return ApiParts(
        settings=settings,
        catalog=served,
        catalogs=catalogs,
        store=AsyncRedisStateStore(redis_url, settings.redis.key_prefix, timeout_s=settings.redis.timeout_ms / 1000,
                                   mode=settings.redis.mode, security=security),
        models=ModelHolder(models_from, catalogs),
        publisher=Publisher(kafka, settings.api.decision_buffer, flush_interval_s=settings.api.decision_flush_ms / 1000,
                            client_id=f"{settings.kafka.client_id}-api", connection=aiokafka_options(settings.kafka)),
        policies=policies,
        params=feature_params(settings),
        contract=contract_rules(settings),
        decisions=RedisDecisionCache(redis_url, settings.redis.key_prefix, ttl_s=settings.api.outcome_window_s,
                                     flush_interval_s=settings.api.decision_flush_ms / 1000,
                                     buffer_size=settings.api.decision_buffer, mode=settings.redis.mode,
                                     security=security),
        rate_limit=rate_limit,
        control=control,
        # NBO_LOOP__ONLINE=false: no online evidence, the model's propensities alone (a static ranking)
        learning=RedisLearningReader(redis_url, settings.redis.key_prefix, refresh_s=settings.loop.refresh_ms / 1000,
                                     timeout_s=max(settings.redis.timeout_ms / 1000, 0.5), mode=settings.redis.mode,
                                     security=security) if settings.loop.online else NoEvidence(),
        loop_stats=loop_stats(settings),
    )


@dataclass
class StreamParts:
    """What a stream engine needs besides its Kafka transport."""

    settings: Settings
    bootstrap: str
    store: RedisStateStore
    params: FeatureParams
    catalog: Catalog  # at start: purchases and outcomes of products not in it are dead-lettered
    catalogs: CatalogSource | None = None  # the catalog in force, polled every NBO_CATALOG__POLL_S
    contract: ContractRules = DEFAULT_RULES  # the bank's customer id and event time rules, checked on decode

    def __post_init__(self) -> None:
        if self.catalogs is None:
            self.catalogs = StaticCatalog(self.catalog)


def build_stream(settings: Settings) -> StreamParts:
    kafka, _ = require_servers(settings, "nbo worker")
    catalogs = catalog_source(settings)
    return StreamParts(settings=settings, bootstrap=kafka, store=state_store(settings), params=feature_params(settings),
                       catalog=catalogs.current, catalogs=catalogs, contract=contract_rules(settings))


@dataclass
class TrainerParts:
    settings: Settings
    catalog: Catalog
    registry: ModelRegistry | ControlledRegistry
    params: ModelParams
    features: FeatureParams
    contract: ContractRules = DEFAULT_RULES  # what the event log is decoded under (fold_event_log's rules)


def build_trainer(settings: Settings, catalog_path: Path | None = None, registry_dir: Path | None = None,
                  params_override: str | None = None) -> TrainerParts:
    """The trainer's parts; the catalog is ``catalog_path`` (``--catalog``), else ``NBO_CATALOG__PATH``."""
    served = catalog(settings, catalog_path)
    return TrainerParts(settings=settings, catalog=served, registry=trainer_registry(settings, served, registry_dir),
                        params=model_params(settings, params_override), features=feature_params(settings),
                        contract=contract_rules(settings))
