"""One ``Settings`` object for every process, read from ``NBO_*`` environment variables.

Nested sections use a double underscore: ``NBO_KAFKA__BOOTSTRAP=broker:9092``,
``NBO_REDIS__URL=redis://redis:6379/0``. Leave both unset to run the embedded servers.
``NBO_CATALOG__PATH=/etc/nbo/mybank.csv`` names the bank's product catalog (default: the packaged one).
``NBO_CONTRACT__*`` narrows the event contract to the bank's customer ids and history;
``NBO_MONEY__*`` sets the base currency every amount is converted into and the rate table.
A bad value fails at start with the name of the setting (see ``load_settings``).
Each secret setting (``SECRET_SETTINGS``: passwords, user names, the control salt) may instead be
read from a file named by ``<VAR>_FILE``, e.g. ``NBO_REDIS__PASSWORD_FILE=/run/secrets/redis_password``.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from schemas.currencies import currency_refusal


class SettingsError(SystemExit):
    """Raised at start when a setting is invalid; the message names the variable."""


class KafkaSettings(BaseModel):
    bootstrap: str | None = Field(
        default=None, description="host:port[,host:port]; unset = start the embedded broker"
    )
    partitions: int = Field(default=4, ge=1, le=1024, description="partitions per topic we create")
    replication_factor: int = Field(default=1, ge=1, le=5)
    client_id: str = "nbo"
    # Securing the connections (docs/OPERATIONS.md, "Securing connections"): every Kafka client of
    # every process (workers, API, topic creation, replay, simulate) uses these.
    tls: bool = Field(default=False, description="connect to the brokers with TLS (security protocol SSL, or "
                      "SASL_SSL with sasl_mechanism)")
    ca_file: Path | None = Field(default=None, description="CA bundle (PEM) the brokers' certificates are checked "
                                 "against; default: the system's CAs")
    cert_file: Path | None = Field(default=None, description="client certificate (PEM), for brokers that require "
                                   "mutual TLS")
    key_file: Path | None = Field(default=None, description="the client certificate's private key (PEM)")
    key_password: SecretStr | None = Field(default=None, description="password of key_file, if it is encrypted")
    check_hostname: bool = Field(default=True, description="check that the broker's certificate names its host")
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        default=None, description="authenticate with SASL (security protocol SASL_PLAINTEXT, or SASL_SSL with tls)")
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None

    @property
    def security_protocol(self) -> str:
        """PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL, from ``tls`` and ``sasl_mechanism``."""
        if self.sasl_mechanism is None:
            return "SSL" if self.tls else "PLAINTEXT"
        return "SASL_SSL" if self.tls else "SASL_PLAINTEXT"

    @model_validator(mode="after")
    def _security(self) -> "KafkaSettings":
        _check_tls_files("NBO_KAFKA", self.tls, self.ca_file, self.cert_file, self.key_file,
                         "set NBO_KAFKA__TLS=true")
        if self.sasl_mechanism is not None and (not self.sasl_username or self.sasl_password is None):
            raise ValueError("NBO_KAFKA__SASL_MECHANISM needs NBO_KAFKA__SASL_USERNAME and NBO_KAFKA__SASL_PASSWORD "
                             "(or NBO_KAFKA__SASL_PASSWORD_FILE)")
        if self.sasl_mechanism is None and (self.sasl_username or self.sasl_password is not None):
            raise ValueError("NBO_KAFKA__SASL_USERNAME/PASSWORD are set but NBO_KAFKA__SASL_MECHANISM is not: "
                             "set it to PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
        return self

    @field_validator("bootstrap")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        for part in value.split(","):
            host, sep, port = part.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"expected host:port[,host:port], got {value!r}")
        return value


class RedisSettings(BaseModel):
    url: str | None = Field(default=None, description="redis://host:port/db; unset = embedded server")
    key_prefix: str = Field(default="nbo", pattern=r"^[a-z][a-z0-9_-]{0,30}$")
    timeout_ms: int = Field(default=20, ge=1, le=10_000, description="per-request read budget of the API")
    mode: Literal["auto", "single", "cluster"] = Field(
        default="auto", description="auto = ask the server at url (INFO cluster) whether it is a Redis Cluster node; "
        "single or cluster force it")
    # Securing the connections (docs/OPERATIONS.md): every Redis client (adapters/redis_connect.py).
    username: str | None = Field(default=None, description="ACL user (default: the URL's, else 'default')")
    password: SecretStr | None = Field(default=None, description="the ACL user's password (or requirepass)")
    ca_file: Path | None = Field(default=None, description="CA bundle (PEM) for a rediss:// URL; default: the "
                                 "system's CAs")
    cert_file: Path | None = Field(default=None, description="client certificate (PEM) for a rediss:// URL, for "
                                   "servers with tls-auth-clients")
    key_file: Path | None = Field(default=None, description="the client certificate's private key (PEM)")
    check_hostname: bool = Field(default=True, description="check that the server's certificate names its host")

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"expected a redis:// or rediss:// URL, got {value!r}")
        return value

    @property
    def tls(self) -> bool:
        return self.url is not None and self.url.startswith("rediss://")

    @model_validator(mode="after")
    def _security(self) -> "RedisSettings":
        _check_tls_files("NBO_REDIS", self.tls, self.ca_file, self.cert_file, self.key_file,
                         "use a rediss:// URL in NBO_REDIS__URL")
        return self


def _check_tls_files(section: str, tls: bool, ca_file: Path | None, cert_file: Path | None,
                     key_file: Path | None, how: str) -> None:
    """The TLS files are only given with TLS on, a certificate with its key, and each is readable."""
    given = {"CA_FILE": ca_file, "CERT_FILE": cert_file, "KEY_FILE": key_file}
    named = [f"{section}__{name}" for name, path in given.items() if path is not None]
    if named and not tls:
        raise ValueError(f"{', '.join(named)} given without TLS: {how}")
    if (cert_file is None) != (key_file is None):
        raise ValueError(f"{section}__CERT_FILE and {section}__KEY_FILE go together: set both or neither")
    for name, path in given.items():
        if path is not None and not os.access(path, os.R_OK):
            raise ValueError(f"{section}__{name}: cannot read {path}")


class StreamSettings(BaseModel):
    engine: Literal["direct", "faust"] = Field(
        default="direct", description="direct = one aiokafka group member (fast); faust = one faust agent per topic")
    group_id: str = "nbo-stream"
    fetch_wait_ms: int = Field(default=5, ge=1, le=5000,
                               description="max broker fetch wait while records flow; bounds freshness")
    idle_fetch_wait_ms: int = Field(default=500, ge=1, le=5000,
                                    description="direct engine: broker fetch wait and poll timeout once no record "
                                    "came for idle_after_ms (the broker answers at once when one arrives)")
    idle_after_ms: int = Field(default=1000, ge=1, le=600_000,
                               description="direct engine: quiet time after which the idle waits apply")
    batch_size: int = Field(default=2000, ge=1, le=100_000)
    batch_timeout_ms: int = Field(default=5, ge=1, le=10_000,
                                  description="direct engine: longest one poll waits while records flow")
    take_window_ms: int = Field(default=50, ge=1, le=10_000,
                                description="faust engine: how long take_events gathers a batch (adds up to this "
                                "to freshness under light load; faust's per-batch cost is high below 50)")
    dead_letter_keep_original: bool = Field(
        default=False, description="put each refused record's original key and bytes into its dead letter; "
        "only for a dead-letter topic cleared for personal data (default: masked, see docs/EVENTS.md)")
    commit_interval_ms: int = Field(default=200, ge=0, le=60_000,
                                    description="direct engine: commit applied offsets at most this often")
    commit_lag_ms: int = Field(default=3000, ge=0, le=600_000,
                               description="commit an offset only once the Redis writes of its records are this "
                               "old (AOF everysec has them on disk by then); both engines")
    session_timeout_s: float = Field(default=6.0, ge=1.0, le=300.0,
                                     description="a worker that stops heartbeating leaves the group after this; "
                                     "its partitions wait that long, plus one rebalance, for a new owner")
    instance_id: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9._-]{1,128}$",
        description="static group membership (KIP-345): this worker's stable name in the group, unique per worker "
        "slot (e.g. the pod's ordinal); a restart within session_timeout_s takes its old partitions back without a "
        "rebalance on Apache Kafka >= 2.3. Unset (default) on Tansu 0.6, where it makes the group rebalance every "
        "few seconds (docs/CAPACITY.md)")
    join_wait_s: float | None = Field(
        default=None, ge=0.0, le=600.0,
        description="a starting worker that finds its group stable with members waits up to this long for the "
        "group to start a rebalance (a dead member's session expiring) and joins that one, so a replacement costs "
        "one rebalance, not two; default session_timeout_s, 0 joins at once; ignored with instance_id")
    inflow_half_life_days: float = Field(default=30.0, gt=0)
    spend_half_life_days: float = Field(default=60.0, gt=0)
    hotline_half_life_days: float = Field(default=30.0, gt=0)
    token_half_life_days: float = Field(default=90.0, gt=0)
    dedupe_ttl_s: int = Field(default=7 * 24 * 3600, ge=60)
    redis_retries: int = Field(default=5, ge=0, le=100)
    redis_wait_s: float = Field(default=60.0, ge=0.0, le=3600.0,
                                description="how long a starting worker waits for Redis to answer (a Redis Cluster: "
                                "every node cluster_state:ok, every slot assigned), logging what it waits for, "
                                "before it exits 3 (Redis unavailable); 0 checks once")
    state_cache_size: int = Field(default=20_000, ge=0, le=10_000_000,
                                  description="customers' last written state a worker keeps to skip reads")


class ClientKey(BaseModel):
    """A client of the API and what its key opens: one offer channel, or ``marketing`` (the
    effectiveness report, ``/v1/reports/``; no offer, outcome or profile)."""

    client: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    channel: Literal["teller", "call_centre", "mobile", "marketing"]


class ApiSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    keys: dict[str, ClientKey] = Field(
        default_factory=dict, description="sha256 hex of each API key -> its client and channel"
    )
    allow_dev_keys: bool = Field(default=False, description="accept dev-teller / dev-agent / dev-mobile / dev-marketing")
    rate_per_s: float = Field(default=200.0, gt=0, description="requests per second per key")
    rate_burst: int = Field(default=400, ge=1)
    max_body_bytes: int = Field(default=16 * 1024, ge=256)
    teller_offers: int = Field(default=1, ge=1, le=5)
    call_centre_offers: int = Field(default=3, ge=1, le=10)
    max_mobile_slots: int = Field(default=10, ge=1, le=20)
    decision_buffer: int = Field(default=10_000, ge=10, description="decision-log records waiting to be sent")
    decision_flush_ms: int = Field(default=100, ge=1, le=10_000,
                                   description="how often buffered decision-log records go to the broker, in one "
                                   "produce request per partition (fewer, larger requests cost less CPU per record)")
    outcome_window_s: int = Field(default=24 * 3600, ge=60, le=30 * 24 * 3600,
                                  description="how long after a decision POST /v1/outcomes accepts an outcome for it "
                                  "(the decisions are kept in Redis that long)")
    rate_limit: Literal["local", "shared"] = Field(
        default="local", description="local = a token bucket in each replica's memory (N replicas let a key through "
        "N times its rate); shared = one GCRA cell per key in Redis that all replicas use, the local bucket as "
        "the fallback when Redis is slow or down")
    rate_limit_budget_ms: float = Field(default=3.0, ge=0.1, le=1000,
                                        description="shared rate limit: the longest a request waits for Redis's "
                                        "answer before the local bucket decides")
    control_source: Literal["files", "redis"] = Field(
        default="files", description="where the promoted model version and the marketing policy come from: files = "
        "the registry's CURRENT file and the levers file, each replica polling its own; redis = the values nbo "
        "promote and nbo levers push store in Redis, every replica switching on their notification "
        "(docs/OPERATIONS.md, Several API replicas)")
    model_poll_s: float = Field(default=5.0, gt=0)
    policy_poll_s: float = Field(default=5.0, gt=0, description="how often the levers file is checked for changes")
    levers_file: Path | None = Field(
        default=None, description="marketing policy JSON (levers, channel fit, caps, cool-downs); "
        "default decisioning/data/levers.json, see docs/API.md")

    @field_validator("keys")
    @classmethod
    def _hashed(cls, value: dict[str, ClientKey]) -> dict[str, ClientKey]:
        for digest in value:
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError("keys must be lower-case sha256 hex digests of the API keys, not the keys")
        return value


class CatalogSettings(BaseModel):
    """The product catalog every process serves (worker, API, trainer, evaluate, tune, promote,
    simulate, demo): one CSV file, validated at start (docs/CATALOG.md)."""

    path: Path | None = Field(
        default=None, description="product catalog CSV (columns in docs/CATALOG.md); "
        "default the packaged domain/data/catalog.csv")
    poll_s: float = Field(default=5.0, gt=0, le=3600,
                          description="how often the API and the stream workers check the catalog file for "
                          "changes (a valid change is served without restart, a bad one refused)")


#: The help of every command's ``--catalog`` (the option wins over the setting).
CATALOG_OPTION_HELP = ("product catalog CSV (default: the file NBO_CATALOG__PATH names, else the packaged "
                       "domain/data/catalog.csv; see docs/CATALOG.md)")


class ModelSettings(BaseModel):
    registry_dir: Path | None = Field(default=None, description="default: <data_dir>/models")
    window_days: float = Field(default=14.0, gt=0, le=365, description="label window of the next-purchase layer")
    training_windows: int = Field(default=2, ge=1, le=12, description="stacked time splits used for training")
    factors: int = Field(default=16, ge=0, le=256, description="ALS factors (0 = no ALS)")
    l2: float = Field(default=3.0, ge=0, description="L2 penalty of the next-purchase layer")
    similar_half_life_days: float = Field(default=30.0, gt=0, description="fade of the similar-after-purchase boost")
    similar_weight: float = Field(default=10.0, ge=0, description="weight of that boost in the model's score (nbo train --tune-similar-weight picks it on a validation window)")
    max_train_rows: int = Field(default=120_000, ge=1000, description="rows kept for ALS and the logistic layer (importance-subsampled)")


class LoopSettings(BaseModel):
    """The closed loop (docs/LOOP.md): control group, attribution, online learning."""

    control_share: float = Field(default=0.03, ge=0.0, le=0.5,
                                 description="share of customers in the control arm (a random eligible offer)")
    control_share_by_channel: dict[Literal["teller", "call_centre", "mobile"], float] = Field(
        default_factory=dict, description="per-channel control share, overriding control_share")
    control_salt: str = Field(default="nbo-control", min_length=1, max_length=128,
                              description="salt of the customer -> arm hash (set a bank secret); arms rotate monthly")
    control_no_offer_channels: tuple[Literal["teller", "call_centre", "mobile"], ...] = Field(
        default=(), description="channels where a control customer gets no offer instead of a random eligible one")
    online: bool = Field(default=True, description="rank with the online evidence (the model's propensity "
                         "times each product's posterior ratio of observed to expected acceptances); false = the model's propensities alone (a static ranking, for comparison)")
    explore_channels: tuple[Literal["teller", "call_centre", "mobile"], ...] = Field(
        default=(), description="channels that rank by a Thompson sample of the posterior (explore; mobile is the "
        "natural first: it adds ~0.2 ms of CPU a request, docs/LOOP.md); the others rank by its mean (exploit)")
    starting_evidence: float = Field(default=5.0, gt=0, le=100_000,
                                     description="how many acceptances the prior of a product's ratio observed / "
                                     "expected acceptances is worth (docs/LOOP.md)")
    segment_min_evidence: float = Field(default=50.0, ge=0,
                                        description="answers a product needs in a segment before that segment's "
                                        "evidence is used instead of the product's overall evidence")
    evidence_half_life_days: float = Field(default=30.0, gt=0, description="old answers weigh half after this")
    refresh_ms: int = Field(default=500, ge=50, le=60_000,
                            description="how often the API re-reads the online evidence from Redis")
    attribution_days: float = Field(default=30.0, gt=0, le=365,
                                    description="a purchase this long after the product was shown is attributed")
    ignored_after_s: int = Field(default=24 * 3600, ge=60, le=30 * 24 * 3600,
                                 description="a shown offer with no answer after this counts as ignored")


#: The secret settings: each also reads ``<VAR>_FILE``, the path of a file holding the value (a
#: Docker or Kubernetes secret), so that the value itself stays out of environments and compose files.
SECRET_SETTINGS: tuple[tuple[str, str], ...] = (
    ("kafka", "sasl_username"), ("kafka", "sasl_password"), ("kafka", "key_password"),
    ("redis", "username"), ("redis", "password"), ("loop", "control_salt"),
)


def secret_variable(section: str, name: str) -> str:
    return f"NBO_{section.upper()}__{name.upper()}"


class SecretFiles(PydanticBaseSettingsSource):
    """The values of the ``<VAR>_FILE`` variables of ``SECRET_SETTINGS``, read from their files
    (one trailing newline dropped). A file that cannot be read, an empty one, or a variable set
    both ways stops the start with the variable's name."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # everything is done in __call__

    def __call__(self) -> dict[str, Any]:
        environ = {k.upper(): v for k, v in os.environ.items()}
        out: dict[str, dict[str, str]] = {}
        for section, name in SECRET_SETTINGS:
            variable = secret_variable(section, name)
            path = environ.get(variable + "_FILE")
            if not path:
                continue
            if variable in environ:
                raise SettingsError(f"invalid settings:\n  {variable} and {variable}_FILE are both set: keep one")
            try:
                value = Path(path).read_text(encoding="utf-8").removesuffix("\n").removesuffix("\r")
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                raise SettingsError(f"invalid settings:\n  {variable}_FILE: cannot read {path}: {reason}") from None
            if not value:
                raise SettingsError(f"invalid settings:\n  {variable}_FILE: {path} is empty")
            out.setdefault(section, {})[name] = value
        return out


class ContractSettings(BaseModel):
    """The bank's narrowing of the event contract (``schemas.rules``), applied by the stream's
    decoding and the offer API alike."""

    customer_id_pattern: str | None = Field(
        default=None, description="regular expression every customer id must match in full, e.g. CUST-[0-9]{6}; "
        "unset: any 1-64 letters, digits, - _ . : (always required)")
    refuse_card_numbers: bool = Field(
        default=True, description="refuse customer ids holding a Luhn-valid 13-19 digit run as card numbers; "
        "turn off only when the bank's own tokens are such digit strings")
    earliest_occurred_at: AwareDatetime = Field(
        default=datetime(2000, 1, 1, tzinfo=timezone.utc),
        description="events before this time (ISO 8601 with a zone) are refused as corrupt; set it earlier to "
        "import older history")

    @field_validator("customer_id_pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression ({exc})") from None
        return value


class MoneySettings(BaseModel):
    """The base currency every amount is converted into before features, thresholds and the
    state see it, and the rates (``domain.money``, docs/EVENTS.md)."""

    base_currency: str = Field(default="CNY", description="ISO 4217 code of the bank's base currency")
    rates_file: Path | None = Field(
        default=None, description="rate table into the base currency, CSV (currency,rate) or JSON "
        "({\"USD\": \"7.10\"}), the base listed at 1; default the packaged domain/data/rates.csv (into CNY)")
    large_inflow_minor: int = Field(default=5_000_000, ge=1,
                                    description="a single credit at least this, in base-currency minor units, is a "
                                    "large inflow (default 50,000.00 CNY)")

    @field_validator("base_currency")
    @classmethod
    def _iso(cls, value: str) -> str:
        refused = currency_refusal(value)
        if refused is not None:
            raise ValueError(refused)
        return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="NBO_", env_nested_delimiter="__", extra="ignore", case_sensitive=False
    )

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, SecretFiles(settings_cls), env_settings, dotenv_settings, file_secret_settings

    data_dir: Path = Field(default=Path(".nbo"), description="embedded server data, models, logs")
    kafka: KafkaSettings = KafkaSettings()
    redis: RedisSettings = RedisSettings()
    stream: StreamSettings = StreamSettings()
    api: ApiSettings = ApiSettings()
    model: ModelSettings = ModelSettings()
    catalog: CatalogSettings = CatalogSettings()
    loop: LoopSettings = LoopSettings()
    contract: ContractSettings = ContractSettings()
    money: MoneySettings = MoneySettings()

    @property
    def registry_dir(self) -> Path:
        return self.model.registry_dir or self.data_dir / "models"

    def with_servers(self, kafka_bootstrap: str, redis_url: str) -> "Settings":
        """These settings pointed at running servers (the embedded ones ``nbo demo`` started)."""
        return self.model_copy(update={
            "kafka": self.kafka.model_copy(update={"bootstrap": kafka_bootstrap}),
            "redis": self.redis.model_copy(update={"url": redis_url}),
        })


class ClientSettings(BaseSettings):
    """The terminal clients' settings (``nbo teller``, ``nbo mobile``): where the API is and
    each channel's key. Flat variable names, as documented in docs/CLIENTS.md."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False)

    api_url: str | None = Field(default=None, validation_alias="NBO_API_URL",
                                description="the offer API's base URL; unset = http://127.0.0.1:<NBO_API__PORT>")
    teller_key: str | None = Field(default=None, validation_alias="NBO_TELLER_KEY")
    agent_key: str | None = Field(default=None, validation_alias="NBO_AGENT_KEY")
    mobile_key: str | None = Field(default=None, validation_alias="NBO_MOBILE_KEY")

    def key(self, channel: str) -> str | None:
        return {"teller": self.teller_key, "call_centre": self.agent_key, "mobile": self.mobile_key}[channel]


def load_settings(**overrides: object) -> Settings:
    """Read and validate the settings; a bad value exits with the variable's name and the fix."""
    return _validated(Settings, overrides)


def load_client_settings() -> ClientSettings:
    return _validated(ClientSettings, {})


def _validated(kind: type, overrides: dict[str, object]):  # type: ignore[no-untyped-def]
    try:
        return kind(**overrides)
    except ValidationError as exc:
        lines = []
        for error in exc.errors(include_url=False):
            name = "NBO_" + "__".join(str(p).upper() for p in error["loc"])
            value = error.get("input")
            secret = tuple(str(p) for p in error["loc"][-2:]) in SECRET_SETTINGS
            got = "" if isinstance(value, dict) else " (got ***)" if secret else f" (got {value!r})"
            lines.append(f"  {name}: {error['msg']}{got}")
        raise SettingsError("invalid settings:\n" + "\n".join(lines)) from None
