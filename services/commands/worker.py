"""``nbo worker``: run one stream worker process (join the consumer group, apply events to Redis).
``nbo worker --check`` exits 0 when the configured broker and Redis answer (a health check; on a
Redis Cluster every node must say ``cluster_state:ok`` with every slot assigned).

The engine comes from ``NBO_STREAM__ENGINE``: ``direct`` (default, ``streams.direct``) or
``faust`` (``streams.faust_engine``); both are transports over ``streams.core`` and build their
parts through ``bootstrap.build_stream``. Every log line has card-number-like digits masked, and
the Kafka client's protocol dumps (whole records) stay off even at ``--log-level debug``
(``streams.masking.mask_worker_logs``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket

from bootstrap.settings import load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--check", action="store_true", help="exit 0 if the broker and Redis answer")
    parser.add_argument("--engine", choices=["direct", "faust"], help="override NBO_STREAM__ENGINE")
    levels = ["debug", "info", "warning", "error"]
    parser.add_argument("--log-level", dest="log_level", default="warning", choices=levels,
                        help="log level (the API's spelling)")
    parser.add_argument("--loglevel", dest="log_level", choices=levels, help=argparse.SUPPRESS)  # the old spelling


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    if args.check:
        return _check(settings)
    engine = args.engine or settings.stream.engine
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    from streams.masking import mask_worker_logs

    mask_worker_logs()  # no card number in any log line, at any level
    if engine == "direct":
        from streams import direct

        return asyncio.run(direct.run(settings))
    import faust

    from bootstrap.connections import aiokafka_options
    from streams.faust_engine import create_app
    from streams.membership import join_wait_s, wait_to_join_group

    _wait_for_redis(settings)
    app = create_app(settings)
    asyncio.run(wait_to_join_group(settings.kafka.bootstrap or "", settings.stream.group_id,
                                   join_wait_s(settings.stream), client_id=settings.kafka.client_id,
                                   **aiokafka_options(settings.kafka)))
    worker = faust.Worker(app, loglevel=args.log_level, quiet=True)
    worker.execute_from_commandline()
    return 0


def _wait_for_redis(settings) -> None:  # type: ignore[no-untyped-def]
    """The faust engine's first step (the direct engine's is in ``streams.direct.run``): wait
    for Redis, saying so, or exit 3 (``streams.core.store_ready_or_stop``)."""
    from bootstrap import state_store
    from streams.core import store_ready_or_stop

    store = state_store(settings)
    try:
        store_ready_or_stop(store, settings.stream.redis_wait_s)
    finally:
        store.close()


def _check(settings) -> int:  # type: ignore[no-untyped-def]
    from adapters.redis_connect import cluster_problems, connect, is_cluster
    from bootstrap import require_servers
    from bootstrap.connections import redis_security
    from bootstrap.settings import SettingsError

    try:
        bootstrap, redis_url = require_servers(settings, "nbo worker --check")
    except SettingsError as exc:
        print(exc)
        return 1
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
        client = connect(redis_url, settings.redis.mode, socket_timeout_s=3, connect_timeout_s=3,
                         security=redis_security(settings.redis))
        try:
            problems = cluster_problems(client) if is_cluster(client) else [] if client.ping() else ["no PONG"]
        finally:
            client.close()
    except Exception as exc:
        print(f"unhealthy: {exc}")
        return 1
    if problems:
        print(f"unhealthy: Redis Cluster: {'; '.join(problems)}")
        return 1
    return 0
