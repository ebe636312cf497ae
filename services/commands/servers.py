"""``nbo servers``: start the embedded broker and Redis for development and print where they are,
or (``--create-topics``) only create the topics on the configured broker and exit."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from services.runtime import create_topics, running_servers
from schemas.topics import ALL_TOPICS
from bootstrap.connections import kafka_python_options
from bootstrap.settings import load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--create-topics", action="store_true",
                        help="create the topics on the configured broker (NBO_KAFKA__BOOTSTRAP) and exit "
                             "(default: start the embedded broker and Redis and serve until Ctrl-C)")


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    if args.create_topics:
        if settings.kafka.bootstrap is None:
            print("nbo servers --create-topics needs NBO_KAFKA__BOOTSTRAP", file=sys.stderr)
            return 2
        create_topics(settings.kafka.bootstrap, ALL_TOPICS, settings.kafka.partitions,
                      settings.kafka.replication_factor, kafka_python_options(settings.kafka))
        print(f"topics ready on {settings.kafka.bootstrap}: {', '.join(ALL_TOPICS)}")
        return 0
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with running_servers(settings) as servers:
        for name, value in servers.env().items():
            print(f"export {name}={value}")
        if servers.cleared_keys:
            print(f"# cleared {servers.cleared_keys:,} Redis keys of an earlier start: the embedded broker starts empty")
        print("# serving until Ctrl-C", flush=True)
        try:
            while not stop.wait(0.5):
                dead = [p.name for p in servers.processes if not p.alive()]
                if dead:
                    print(f"embedded server stopped unexpectedly: {', '.join(dead)}", file=sys.stderr)
                    return 1
        except KeyboardInterrupt:
            pass
    return 0
