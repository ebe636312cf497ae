"""``nbo demo``: the whole loop on one machine, on simulated bank traffic.

1. start the embedded broker and Redis (or use the configured ones); the embedded broker keeps
   nothing between runs, so the customer state an earlier run left in the embedded Redis is
   cleared and the run starts clean (it says how many keys),
2. train a model on a simulated history and promote it, or reuse the current one (it says which
   version and when it was trained) if it was trained for the catalog in use (``NBO_CATALOG__PATH``),
3. start a stream worker and the offer API as child processes,
4. publish recent simulated traffic and wait until the worker has taken all of it; it prints how
   many events the worker applied, from the worker's own counters (duplicates and dead letters
   named apart),
5. print offers with reasons for a few customers on the teller, call-centre and mobile channels,
6. print the URLs and serve until Ctrl-C (``--once``: stop and exit 0).

If any child process dies, everything stops and the demo exits non-zero with its log tail.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, TypeVar

import httpx

from bootstrap import catalog, state_store
from bootstrap.settings import CATALOG_OPTION_HELP, Settings, load_settings
from domain.catalog import CatalogError
from schemas.topics import INPUT_TOPICS, TOPIC_FOR_TYPE
from services.runtime import Servers, start_servers
from services.stack import DEV_KEYS, Stack

T = TypeVar("T")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--once", action="store_true",
                        help="print the offers, stop everything and exit 0 (default: serve until Ctrl-C)")
    parser.add_argument("--customers", type=int, default=300, help="customers in the live traffic (default 300)")
    parser.add_argument("--days", type=int, default=30, help="days of live traffic, ending now (default 30)")
    parser.add_argument("--train-customers", type=int, default=5000,
                        help="customers in the simulated history the first model is trained on (default 5000; "
                             "unused when a model is already current)")
    parser.add_argument("--seed", type=int, default=7,
                        help="random seed of the simulated history (the live traffic uses seed + 1) (default 7)")
    parser.add_argument("--show", type=int, default=2, help="customers to show per channel (default 2)")
    parser.add_argument("--catalog", type=Path, default=None,
                        help=CATALOG_OPTION_HELP + "; the worker and the API serve it too")


class Progress:
    """Numbered steps on stderr-friendly stdout, with the time each took."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.number = 0

    def step(self, title: str, action: Callable[[], T]) -> T:
        self.number += 1
        print(f"[{self.number}/{self.total}] {title} ...", end="", flush=True)
        started = time.monotonic()
        result = action()
        print(f" done ({time.monotonic() - started:.1f} s)", flush=True)
        return result


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    extra_env: dict[str, str] = {}
    if args.catalog is not None:  # the option wins over NBO_CATALOG__PATH, here and in the children
        try:
            catalog(settings, args.catalog)
        except CatalogError as exc:
            print(f"nbo demo: {exc}", file=sys.stderr)
            return 2
        path = args.catalog.resolve()
        settings = settings.model_copy(update={"catalog": settings.catalog.model_copy(update={"path": path})})
        extra_env["NBO_CATALOG__PATH"] = str(path)
    served = catalog(settings)  # a bad NBO_CATALOG__PATH stops here, before any server starts
    progress = Progress(6)
    servers = progress.step("starting Kafka-protocol broker and Redis", lambda: start_servers(settings))
    stack = Stack(servers, settings.data_dir / "logs", api_port=_api_port(settings), extra_env=extra_env)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    # Ctrl-C stops everything even when the demo was started where SIGINT is ignored (a shell's
    # background job, some process supervisors).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        print(f"      broker {servers.kafka_bootstrap}   redis {servers.redis_url}")
        print(f"      catalog {settings.catalog.path or 'packaged'}: {len(served)} products, "
              f"sha256 {served.content_hash()[:12]}")
        if servers.cleared_keys:
            print(f"      cleared {servers.cleared_keys:,} Redis keys of an earlier run: the embedded broker "
                  "starts empty, and that customer state was folded from its lost log")
        current = _current_model(settings)
        if current is None:
            version = progress.step("training the first model on a simulated history",
                                    lambda: _train_model(settings, args))
        else:
            version, trained_at = current
            progress.step(f"reusing model {version} trained at {trained_at} (nbo train makes a new one)",
                          lambda: None)
        print(f"      serving model {version}")
        progress.step("starting the stream worker and the offer API", lambda: _start_children(stack))
        store = state_store(settings.with_servers(servers.kafka_bootstrap, servers.redis_url))
        before = store.counters()
        events = _simulate_traffic(settings, args)
        expected = sum(1 for e in events if TOPIC_FOR_TYPE[e.type] in INPUT_TOPICS)
        progress.step(f"publishing {len(events)} simulated bank events", lambda: _publish(servers, events))
        taken = progress.step(f"waiting for the stream worker to take the {expected} events",
                              lambda: _wait_taken(store, before, expected, stack))
        print(f"      the worker applied {taken['applied']} of the {expected} events"
              + (f"; {taken['duplicates']} it had already applied" if taken["duplicates"] else "")
              + (f"; {taken['dead_letters']} went to the dead-letter topic" if taken["dead_letters"] else ""))
        customers = _interesting_customers(events, args.show * 3)
        answers = progress.step("asking the offer API for offers", lambda: _ask_offers(stack, customers, args.show))
        _print_offers(answers)
        _print_urls(stack, customers[0])
        if args.once:
            return 0
        print("Serving until Ctrl-C.", flush=True)
        return _supervise(stack, servers, stop)
    except KeyboardInterrupt:
        return 0
    finally:
        stack.stop()
        servers.stop()


def _api_port(settings: Settings) -> int:
    from services.runtime import free_port
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", settings.api.port))
            return settings.api.port
        except OSError:
            return free_port()


def _current_model(settings: Settings) -> tuple[str, str] | None:
    """The registry's current version and when it was trained (``created_at``, UTC), if it was
    trained for the catalog the demo serves (``NBO_CATALOG__PATH``); else None (train one)."""
    from bootstrap import model_registry

    registry = model_registry(settings)
    version = registry.current_version()
    if version is None:
        return None
    meta = registry.metadata(version)
    served = catalog(settings).content_hash()
    if meta.get("catalog_hash") != served:
        print(f"      the current model {version} was trained for catalog {str(meta.get('catalog_hash'))[:12]}, "
              f"the catalog in use is {served[:12]}: training one for it")
        return None
    return version, str(meta.get("created_at", "an unknown time"))


def _train_model(settings: Settings, args: argparse.Namespace) -> str:
    from services.commands.train import train_on_simulation

    return train_on_simulation(settings, customers=args.train_customers, seed=args.seed, promote=True)


def _start_children(stack: Stack) -> None:
    stack.start_worker()
    stack.start_api()


def _simulate_traffic(settings: Settings, args: argparse.Namespace) -> list:
    """Live traffic over the catalog every process serves (``NBO_CATALOG__PATH``)."""
    from simulator.bank import simulate_events

    start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=args.days)
    return list(simulate_events(catalog(settings), customers=args.customers, days=args.days,
                                seed=args.seed + 1, start=start))


def _publish(servers: Servers, events: list) -> None:
    from services.commands.simulate import publish

    publish(events, servers.kafka_bootstrap)


#: The stream worker's counters (``StateStore.counters``) of the records it has taken.
TAKEN = ("applied", "duplicates", "dead_letters")


def _wait_taken(store, before: dict[str, int], expected: int, stack: Stack,  # type: ignore[no-untyped-def]
                deadline_s: float = 180) -> dict[str, int]:
    """Waits until the worker's counters have grown by ``expected`` records (applied, skipped as
    already applied, or dead-lettered) since ``before``; returns the growth of each."""
    deadline = time.monotonic() + deadline_s
    while True:
        for child in stack.children():
            if not child.alive():
                raise SystemExit(f"{child.name} stopped:\n{child.tail(30)}")
        now = store.counters()
        taken = {name: now.get(name, 0) - before.get(name, 0) for name in TAKEN}
        if sum(taken.values()) >= expected:
            return taken
        if time.monotonic() > deadline:
            raise SystemExit(f"the worker took {sum(taken.values())} of {expected} events in {deadline_s:.0f} s; "
                             f"worker log:\n{stack.worker.tail(30) if stack.worker else ''}")
        print(".", end="", flush=True)
        time.sleep(0.5)


def _interesting_customers(events: list, count: int) -> list[str]:
    """Customers with the most varied recent behaviour make the best examples."""
    kinds: dict[str, set[str]] = {}
    for event in events:
        kinds.setdefault(event.customer_id, set()).add(event.type)
    ranked = sorted(kinds, key=lambda c: (-len(kinds[c]), c))
    return ranked[:count]


CHANNELS = ("teller", "call_centre", "mobile")


def _ask_offers(stack: Stack, customers: list[str], per_channel: int) -> dict[str, list[dict]]:
    """The offer API's answers, per channel, for ``per_channel`` of ``customers`` each."""
    answers: dict[str, list[dict]] = {}
    with httpx.Client(base_url=stack.api_url, timeout=10) as client:
        for index, channel in enumerate(CHANNELS):
            answers[channel] = []
            for customer_id in customers[index * per_channel:(index + 1) * per_channel]:
                response = client.get(f"/v1/customers/{customer_id}/offers", params={"channel": channel},
                                      headers={"X-API-Key": DEV_KEYS[channel]})
                if response.status_code != 200:
                    raise SystemExit(f"offer API answered {response.status_code}: {response.text}")
                answers[channel].append(response.json())
    return answers


def _print_offers(answers: dict[str, list[dict]]) -> None:
    for channel, bodies in answers.items():
        print(f"\n== {channel} ==")
        for body in bodies:
            customer_id = body["customer_id"]
            flag = "  (degraded)" if body.get("degraded") else ""
            print(f"{customer_id}  model {body['model_version']}{flag}")
            if body.get("service_action"):
                print(f"   ! {body['service_action']['en']}")
            for offer in body["offers"]:
                print(f"   {offer['rank']}. {offer['name']} / {offer['name_zh']}  score {offer['score']:.3f}")
                print(f"      {offer['reason']['en']}")
                print(f"      {offer['reason']['zh']}")


def _print_urls(stack: Stack, example_customer: str) -> None:
    print(f"\nOffer API      {stack.api_url}/docs")
    print(f"Agent screen   {stack.api_url}/agent?customer={example_customer}#key={DEV_KEYS['call_centre']}")
    print(f"Metrics        {stack.api_url}/metrics")
    print("Dev API keys   " + ", ".join(f"{c}={k}" for c, k in DEV_KEYS.items()))


def _supervise(stack: Stack, servers: Servers, stop: threading.Event) -> int:
    while not stop.wait(0.5):
        for child in [*stack.children(), *servers.processes]:
            if not child.alive():
                print(f"{child.name} stopped unexpectedly; stopping everything. Last output:\n{child.tail(30)}",
                      file=sys.stderr)
                return 1
    return 0
