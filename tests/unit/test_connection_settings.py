"""Securing connections: the ``NBO_KAFKA__*`` / ``NBO_REDIS__*`` security settings as each
client library's arguments (aiokafka for the workers' consumers and producers and the API's
decision log, faust's credentials for its producer and the transport's group member, kafka-python
for topic creation, replay and simulate, redis-py for every Redis client, single and cluster,
sync and asyncio); secrets read from ``<VAR>_FILE``; bad combinations refused at start naming
the variable."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import pytest
import redis
import redis.asyncio as aredis
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

from adapters.redis_connect import RedisSecurity, connect_pubsub_async
from bootstrap.connections import aiokafka_options, faust_credentials, kafka_python_options, redis_security
from bootstrap.settings import SettingsError, load_settings


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA-less self-signed certificate and its key (PEM), as a bank's PKI would hand out."""
    where = tmp_path_factory.mktemp("pki")
    cert, key = where / "client.pem", where / "client.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=nbo",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return {"ca": cert, "cert": cert, "key": key}


def kafka_settings(**kafka: object):  # type: ignore[no-untyped-def]
    return load_settings(kafka={"bootstrap": "broker:9093", **kafka}).kafka


def test_a_plaintext_broker_gets_no_security_arguments() -> None:
    kafka = kafka_settings()
    assert aiokafka_options(kafka) == {"security_protocol": "PLAINTEXT"}
    assert kafka_python_options(kafka) == {"security_protocol": "PLAINTEXT"}
    assert faust_credentials(kafka) is None
    assert credentials_to_aiokafka_auth(faust_credentials(kafka)) == {"security_protocol": "PLAINTEXT"}


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_over_tls_reaches_every_kafka_client(pki: dict[str, Path], mechanism: str) -> None:
    kafka = kafka_settings(tls=True, ca_file=pki["ca"], cert_file=pki["cert"], key_file=pki["key"],
                           check_hostname=False, sasl_mechanism=mechanism, sasl_username="nbo-worker",
                           sasl_password="s3cret")
    assert kafka.security_protocol == "SASL_SSL"

    aio = aiokafka_options(kafka)
    assert aio["security_protocol"] == "SASL_SSL" and aio["sasl_mechanism"] == mechanism
    assert (aio["sasl_plain_username"], aio["sasl_plain_password"]) == ("nbo-worker", "s3cret")
    context = aio["ssl_context"]
    assert isinstance(context, ssl.SSLContext) and context.check_hostname is False
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.get_ca_certs()  # the bank's CA bundle is loaded

    # faust: its producer and the transport's group member get the same, via broker_credentials.
    faust_args = credentials_to_aiokafka_auth(faust_credentials(kafka))
    assert faust_args["security_protocol"] == "SASL_SSL" and faust_args["sasl_mechanism"] == mechanism
    assert (faust_args["sasl_plain_username"], faust_args["sasl_plain_password"]) == ("nbo-worker", "s3cret")
    assert faust_args["ssl_context"].get_ca_certs()

    python = kafka_python_options(kafka)
    assert python == {"security_protocol": "SASL_SSL", "ssl_check_hostname": False, "ssl_cafile": str(pki["ca"]),
                      "ssl_certfile": str(pki["cert"]), "ssl_keyfile": str(pki["key"]), "sasl_mechanism": mechanism,
                      "sasl_plain_username": "nbo-worker", "sasl_plain_password": "s3cret"}
    for client in (KafkaProducer, KafkaConsumer, KafkaAdminClient):  # names kafka-python knows
        assert set(python) <= set(client.DEFAULT_CONFIG)


def test_tls_alone_and_sasl_alone_pick_their_protocols(pki: dict[str, Path]) -> None:
    tls = kafka_settings(tls=True, ca_file=pki["ca"])
    assert aiokafka_options(tls)["security_protocol"] == "SSL" and aiokafka_options(tls)["ssl_context"].check_hostname
    assert credentials_to_aiokafka_auth(faust_credentials(tls))["security_protocol"] == "SSL"
    sasl = kafka_settings(sasl_mechanism="SCRAM-SHA-512", sasl_username="u", sasl_password="p")
    assert aiokafka_options(sasl)["security_protocol"] == "SASL_PLAINTEXT" and "ssl_context" not in aiokafka_options(sasl)
    assert kafka_python_options(sasl)["security_protocol"] == "SASL_PLAINTEXT"


@pytest.mark.parametrize(("kafka", "named"), [
    ({"sasl_mechanism": "PLAIN", "sasl_username": "u"}, "NBO_KAFKA__SASL_PASSWORD"),
    ({"sasl_username": "u", "sasl_password": "p"}, "NBO_KAFKA__SASL_MECHANISM"),
    ({"sasl_mechanism": "GSSAPI", "sasl_username": "u", "sasl_password": "p"}, "NBO_KAFKA__SASL_MECHANISM"),
    ({"ca_file": "/etc/hostname"}, "NBO_KAFKA__TLS=true"),
    ({"tls": True, "ca_file": "/nonexistent/ca.pem"}, "NBO_KAFKA__CA_FILE: cannot read /nonexistent/ca.pem"),
], ids=["no-password", "no-mechanism", "unknown-mechanism", "files-without-tls", "missing-ca"])
def test_a_bad_kafka_security_setting_stops_the_start_naming_it(kafka: dict[str, object], named: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(kafka={"bootstrap": "broker:9093", **kafka})
    assert named in str(caught.value)
    assert "'p'" not in str(caught.value)  # never the password


def test_redis_credentials_and_tls_reach_every_redis_client(pki: dict[str, Path]) -> None:
    settings = load_settings(redis={"url": "rediss://redis.bank:6380/0", "username": "nbo-api", "password": "pw",
                                    "ca_file": pki["ca"], "cert_file": pki["cert"], "key_file": pki["key"]})
    security = redis_security(settings.redis)
    url = settings.redis.url
    expected = {"username": "nbo-api", "password": "pw", "ssl_ca_certs": str(pki["ca"]),
                "ssl_certfile": str(pki["cert"]), "ssl_keyfile": str(pki["key"]), "ssl_check_hostname": True}
    assert security.options(url) == expected
    assert "pw" not in repr(security)
    # One server, sync and asyncio, and the pub/sub connection: built without connecting.
    for pool in (redis.Redis.from_url(url, **security.options(url)).connection_pool,
                 aredis.Redis.from_url(url, **security.options(url)).connection_pool,
                 connect_pubsub_async(url, security).connection_pool):
        assert pool.connection_class.__name__ == "SSLConnection"
        assert {k: pool.connection_kwargs[k] for k in ("username", "password")} == {"username": "nbo-api",
                                                                                    "password": "pw"}
        connection = pool.make_connection()
        assert connection.certfile == str(pki["cert"]) and connection.ca_certs == str(pki["ca"])
    # A cluster (asyncio; the sync one asks its startup node at once, see tests/integration).
    cluster = AsyncRedisCluster.from_url(url, **security.options(url))
    node_kwargs = cluster.nodes_manager.connection_kwargs
    assert node_kwargs["username"] == "nbo-api" and node_kwargs["password"] == "pw"
    assert node_kwargs["ssl_ca_certs"] == str(pki["ca"]) and node_kwargs["ssl_certfile"] == str(pki["cert"])


def test_redis_without_tls_gets_only_the_credentials() -> None:
    security = RedisSecurity(username="nbo", password="pw", ca_file="/ca.pem")
    assert security.options("redis://redis:6379/0") == {"username": "nbo", "password": "pw"}
    assert RedisSecurity().options("redis://redis:6379/0") == {}


def test_redis_tls_files_without_a_rediss_url_stop_the_start(pki: dict[str, Path]) -> None:
    with pytest.raises(SettingsError, match="NBO_REDIS__CA_FILE given without TLS: use a rediss:// URL"):
        load_settings(redis={"url": "redis://redis:6379/0", "ca_file": pki["ca"]})
    with pytest.raises(SettingsError, match="NBO_REDIS__CERT_FILE and NBO_REDIS__KEY_FILE go together"):
        load_settings(redis={"url": "rediss://redis:6379/0", "cert_file": pki["cert"]})


# --- secrets from files --------------------------------------------------------------------------

def test_every_secret_setting_reads_its_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (("kafka_sasl_password", "kafka-pw\n"), ("kafka_sasl_username", "nbo-worker\n"),
                        ("redis_password", "redis-pw\n"), ("redis_username", "nbo-api"),
                        ("control_salt", "bank-salt\n")):
        (tmp_path / name).write_text(value)
    monkeypatch.setenv("NBO_KAFKA__BOOTSTRAP", "broker:9093")
    monkeypatch.setenv("NBO_KAFKA__SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("NBO_KAFKA__SASL_USERNAME_FILE", str(tmp_path / "kafka_sasl_username"))
    monkeypatch.setenv("NBO_KAFKA__SASL_PASSWORD_FILE", str(tmp_path / "kafka_sasl_password"))
    monkeypatch.setenv("NBO_REDIS__URL", "redis://redis:6379/0")
    monkeypatch.setenv("NBO_REDIS__USERNAME_FILE", str(tmp_path / "redis_username"))
    monkeypatch.setenv("NBO_REDIS__PASSWORD_FILE", str(tmp_path / "redis_password"))
    monkeypatch.setenv("NBO_LOOP__CONTROL_SALT_FILE", str(tmp_path / "control_salt"))
    settings = load_settings()
    assert settings.kafka.sasl_username == "nbo-worker"  # one trailing newline dropped
    assert settings.kafka.sasl_password.get_secret_value() == "kafka-pw"
    assert settings.kafka.bootstrap == "broker:9093"  # the other settings of the section still from the environment
    assert aiokafka_options(settings.kafka)["sasl_plain_password"] == "kafka-pw"
    assert redis_security(settings.redis) == RedisSecurity(username="nbo-api", password="redis-pw")
    assert settings.loop.control_salt == "bank-salt"
    assert "kafka-pw" not in repr(settings) and "redis-pw" not in repr(settings)


@pytest.mark.parametrize("problem", ["missing", "empty", "both"])
def test_a_bad_secret_file_stops_the_start_naming_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               problem: str) -> None:
    path = tmp_path / "redis_password"
    if problem != "missing":
        path.write_text("" if problem == "empty" else "pw")
    if problem == "both":
        monkeypatch.setenv("NBO_REDIS__PASSWORD", "pw")
    monkeypatch.setenv("NBO_REDIS__PASSWORD_FILE", str(path))
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert "NBO_REDIS__PASSWORD_FILE" in message
    assert {"missing": f"cannot read {path}: No such file", "empty": "is empty",
            "both": "NBO_REDIS__PASSWORD and NBO_REDIS__PASSWORD_FILE are both set"}[problem] in message


def test_the_api_and_the_worker_are_built_with_the_security_settings(tmp_path: Path) -> None:
    """The composition root hands the settings to every client it builds (nothing connects yet)."""
    from bootstrap import build_api, build_stream

    settings = load_settings(data_dir=tmp_path, kafka={"bootstrap": "broker:9093", "sasl_mechanism": "SCRAM-SHA-256",
                                                       "sasl_username": "nbo-api", "sasl_password": "k-pw"},
                             redis={"url": "redis://redis.bank:6379/0", "username": "nbo-api", "password": "r-pw",
                                    "mode": "single"},
                             api={"allow_dev_keys": True, "rate_limit": "shared"})
    parts = build_api(settings)
    assert parts.publisher._connection["sasl_plain_password"] == "k-pw"  # type: ignore[attr-defined]
    assert parts.publisher._connection["security_protocol"] == "SASL_PLAINTEXT"  # type: ignore[attr-defined]
    expected = RedisSecurity(username="nbo-api", password="r-pw")
    assert parts.store._redis.security == expected  # type: ignore[attr-defined]
    assert parts.decisions._redis.security == expected  # type: ignore[attr-defined]
    assert parts.rate_limit._redis.security == expected  # type: ignore[union-attr]
    assert build_stream(settings).store.security == expected
