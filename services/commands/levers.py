"""``nbo levers push FILE``: make a marketing policy (levers JSON, docs/API.md) the one every API
replica ranks with, when they follow Redis (``NBO_API__CONTROL_SOURCE=redis``). The file is
validated exactly as the API validates its levers file, and refused with the same messages; a
valid one is stored in Redis and announced, and every replica switches within a second.

    nbo levers push levers.json
    nbo levers show
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import redis

from adapters.shared_control import POLICY
from bootstrap import SettingsError, control_store, load_settings
from decisioning import PolicyError, load_policy


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("push", "show"), help="push FILE to the replicas, or show the pushed policy")
    parser.add_argument("file", nargs="?", type=Path, help="the levers JSON file to push")


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    if args.action == "push" and args.file is None:
        print("nbo levers push: name the levers FILE to push", file=sys.stderr)
        return 2
    if args.action == "push":
        try:
            load_policy(args.file)
        except PolicyError as exc:
            print(f"nbo levers: refused: {exc}", file=sys.stderr)
            return 2
    if settings.api.control_source != "redis":
        print("nbo levers: NBO_API__CONTROL_SOURCE is files: the API replicas read their levers file "
              "(NBO_API__LEVERS_FILE); set NBO_API__CONTROL_SOURCE=redis on them and here to share one policy",
              file=sys.stderr)
        return 2
    try:
        control = control_store(settings)
    except SettingsError as exc:
        print(f"nbo levers: {exc}", file=sys.stderr)
        return 2
    try:
        if args.action == "show":
            text = control.get(POLICY)
            print(text if text is not None else "no policy pushed: the replicas serve their levers file")
            return 0
        heard = control.put(POLICY, args.file.read_text(encoding="utf-8"))
    except (redis.RedisError, OSError) as exc:
        print(f"nbo levers: Redis unavailable ({type(exc).__name__}: {exc}); nothing changed", file=sys.stderr)
        return 1
    finally:
        control.close()
    print(f"marketing policy from {args.file} pushed; {heard} API replica(s) notified")
    return 0
