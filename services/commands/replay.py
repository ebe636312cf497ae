"""``nbo replay``: rebuild every customer's state from the log into a fresh Redis namespace
(``--prefix``, default ``<live prefix>-replay``), print what was read, and with ``--switch`` make
it the live namespace. Stop the workers before ``--switch`` and start them after."""

from __future__ import annotations

import argparse
import json

from bootstrap.settings import load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prefix", help="namespace to rebuild into (default: <NBO_REDIS__KEY_PREFIX>-replay)")
    parser.add_argument("--switch", action="store_true", help="then move it over the live namespace")
    parser.add_argument("--idle-s", type=float, default=2.0, help="stop after this long without a record")


def run(args: argparse.Namespace) -> int:
    from bootstrap import catalog, contract_rules, feature_params, require_servers
    from bootstrap.connections import kafka_python_options, redis_security
    from streams.core import KnownProducts
    from streams.replay import replay, switch

    settings = load_settings()
    bootstrap, redis_url = require_servers(settings, "nbo replay")
    live = settings.redis.key_prefix
    target = args.prefix or f"{live}-replay"
    try:
        result = replay(bootstrap, redis_url, target, feature_params(settings), idle_s=args.idle_s,
                        products=KnownProducts.of(catalog(settings)), mode=settings.redis.mode,
                        kafka_options=kafka_python_options(settings.kafka), security=redis_security(settings.redis),
                        contract=contract_rules(settings))
    except ValueError as exc:
        print(f"nbo replay: {exc}")
        return 1
    summary = {"prefix": target, **result.__dict__}
    if args.switch:
        summary["switched_customers"] = switch(redis_url, target, live, settings.redis.mode,
                                               redis_security(settings.redis))
        summary["live_prefix"] = live
    print(json.dumps(summary))
    return 0
