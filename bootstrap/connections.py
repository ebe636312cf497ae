"""The connection settings of ``NBO_KAFKA__*`` and ``NBO_REDIS__*`` as each client library's
arguments: TLS (CA bundle, client certificate and key, host name check) and authentication (SASL
PLAIN / SCRAM for Kafka, an ACL user and password for Redis).

Every Kafka client of the project takes its security arguments from here: the stream workers'
consumers and dead-letter producer (aiokafka: ``aiokafka_options``; faust: ``faust_credentials``,
which its transport also hands to the group member it builds), the API's decision-log producer
(aiokafka), and the kafka-python clients (``kafka_python_options``: topic creation, replay,
simulate). Every Redis client takes ``redis_security`` (``adapters.redis_connect`` applies it).
"""

from __future__ import annotations

import ssl
from typing import Any

from adapters.redis_connect import RedisSecurity
from bootstrap.settings import KafkaSettings, RedisSettings


def kafka_ssl_context(kafka: KafkaSettings) -> ssl.SSLContext | None:
    """The TLS context of the Kafka clients (aiokafka and faust), None without TLS."""
    if not kafka.tls:
        return None
    context = ssl.create_default_context(cafile=str(kafka.ca_file) if kafka.ca_file else None)
    if kafka.cert_file is not None:
        context.load_cert_chain(str(kafka.cert_file), str(kafka.key_file),
                                kafka.key_password.get_secret_value() if kafka.key_password else None)
    context.check_hostname = kafka.check_hostname
    return context


def aiokafka_options(kafka: KafkaSettings) -> dict[str, Any]:
    """Keyword arguments of ``AIOKafkaConsumer`` / ``AIOKafkaProducer`` / ``AIOKafkaAdminClient``."""
    out: dict[str, Any] = {"security_protocol": kafka.security_protocol}
    context = kafka_ssl_context(kafka)
    if context is not None:
        out["ssl_context"] = context
    if kafka.sasl_mechanism is not None:
        out["sasl_mechanism"] = kafka.sasl_mechanism
        out["sasl_plain_username"] = kafka.sasl_username
        out["sasl_plain_password"] = kafka.sasl_password.get_secret_value()  # type: ignore[union-attr]
    return out


def kafka_python_options(kafka: KafkaSettings) -> dict[str, Any]:
    """Keyword arguments of kafka-python's ``KafkaProducer`` / ``KafkaConsumer`` / ``KafkaAdminClient``."""
    out: dict[str, Any] = {"security_protocol": kafka.security_protocol}
    if kafka.tls:
        out["ssl_check_hostname"] = kafka.check_hostname
        for name, path in (("ssl_cafile", kafka.ca_file), ("ssl_certfile", kafka.cert_file),
                           ("ssl_keyfile", kafka.key_file)):
            if path is not None:
                out[name] = str(path)
        if kafka.key_password is not None:
            out["ssl_password"] = kafka.key_password.get_secret_value()
    if kafka.sasl_mechanism is not None:
        out["sasl_mechanism"] = kafka.sasl_mechanism
        out["sasl_plain_username"] = kafka.sasl_username
        out["sasl_plain_password"] = kafka.sasl_password.get_secret_value()  # type: ignore[union-attr]
    return out


def faust_credentials(kafka: KafkaSettings) -> Any:
    """faust's ``broker_credentials`` (SASL, or TLS alone), None for a plaintext broker."""
    import faust

    context = kafka_ssl_context(kafka)
    if kafka.sasl_mechanism is not None:
        return faust.SASLCredentials(username=kafka.sasl_username,
                                     password=kafka.sasl_password.get_secret_value(),  # type: ignore[union-attr]
                                     ssl_context=context, mechanism=kafka.sasl_mechanism)
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def redis_security(redis: RedisSettings) -> RedisSecurity:
    """What every Redis client sends and checks (``adapters.redis_connect``)."""
    return RedisSecurity(
        username=redis.username,
        password=redis.password.get_secret_value() if redis.password is not None else None,
        ca_file=str(redis.ca_file) if redis.ca_file else None,
        cert_file=str(redis.cert_file) if redis.cert_file else None,
        key_file=str(redis.key_file) if redis.key_file else None,
        check_hostname=redis.check_hostname,
    )
