"""``nbo promote VERSION``: make a registry version current (the offer service picks it up
without restart). Refuses a version that is missing, corrupt or trained for another catalog.

    nbo promote 20261123T000009Z-611298
    nbo promote --list
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from domain.catalog import CatalogError, load_catalog
from adapters.model_registry import ModelRegistry, RegistryError
from bootstrap.settings import load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("version", nargs="?", help="the version to make current")
    parser.add_argument("--list", action="store_true", help="list versions (current marked with *)")
    parser.add_argument("--registry", type=Path, default=None, help="registry directory (default NBO_MODEL__REGISTRY_DIR)")
    parser.add_argument("--catalog", type=Path, default=None, help="product catalog CSV (default: packaged)")


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    try:
        registry = ModelRegistry(args.registry or settings.registry_dir, load_catalog(args.catalog))
    except CatalogError as exc:
        print(f"nbo promote: {exc}", file=sys.stderr)
        return 2
    if args.list or not args.version:
        current = registry.current_version()
        for version in registry.versions():
            try:
                metrics = registry.metadata(version).get("metrics", {})
            except RegistryError as exc:
                metrics = {"error": str(exc)}
            print(f"{'*' if version == current else ' '} {version}  {json.dumps(metrics) if metrics else ''}".rstrip())
        if not args.version and not args.list:
            print("nbo promote: name a VERSION to promote (see the list above)", file=sys.stderr)
            return 2
        return 0
    try:
        registry.promote(args.version)
    except RegistryError as exc:
        print(f"nbo promote: {exc}; current stays {registry.current_version()}", file=sys.stderr)
        return 1
    print(f"current model is now {args.version}")
    return 0
