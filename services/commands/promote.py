"""``nbo promote VERSION``: make a registry version current (the offer service picks it up
without restart). Refuses a version that is missing, corrupt or trained for another catalog, and
one the promotion gate refused when it was trained (too few labelled purchases, or ranking worse
than popularity on the validation window: ``nbo train`` saves the verdict with the version) or
that carries no verdict (trained before the gate). ``--force`` promotes it anyway; the version's
metadata records that it was forced and what it overrode, and ``--list`` shows it.
With ``NBO_API__CONTROL_SOURCE=redis`` it also stores the version in Redis and announces it, so
every API replica switches within a second (docs/OPERATIONS.md, Several API replicas).

    nbo promote 20261123T000009Z-611298
    nbo promote 20261123T000009Z-611298 --force
    nbo promote --list
    nbo promote VERSION --require-ope-not-worse --decisions d.jsonl --outcomes o.jsonl --events e.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from domain.catalog import CatalogError
from adapters.model_registry import ModelRegistry, RegistryError
from bootstrap import Settings, catalog, load_settings
from bootstrap.settings import CATALOG_OPTION_HELP as CATALOG_HELP


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("version", nargs="?", help="the version to make current")
    parser.add_argument("--list", action="store_true", help="list versions (current marked with *)")
    parser.add_argument("--force", action="store_true",
                        help="promote even a version the promotion gate refused (recorded in its metadata)")
    parser.add_argument("--registry", type=Path, default=None, help="registry directory (default NBO_MODEL__REGISTRY_DIR)")
    parser.add_argument("--catalog", type=Path, default=None, help=CATALOG_HELP)
    # Off-policy check before promoting (services/commands/ope.py).
    parser.add_argument("--require-ope-not-worse", action="store_true",
                        help="promote only if the version's IPS minus the serving (current) model's, both replayed "
                             "on the decision log, has a 95 %% lower bound no lower than -(--ope-margin)")
    parser.add_argument("--decisions", type=Path, default=None, help="with --require-ope-not-worse: decisions JSONL")
    parser.add_argument("--outcomes", type=Path, default=None, help="with --require-ope-not-worse: outcomes JSONL")
    parser.add_argument("--events", type=Path, default=None,
                        help="with --require-ope-not-worse: customer events JSONL the states are folded from")
    parser.add_argument("--ope-margin", type=float, default=0.01,
                        help="acceptance-rate points the candidate may be worse than the serving model (lower bound)")


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    try:
        registry = ModelRegistry(args.registry or settings.registry_dir, catalog(settings, args.catalog))
    except CatalogError as exc:
        print(f"nbo promote: {exc}", file=sys.stderr)
        return 2
    if args.list or not args.version:
        current = registry.current_version()
        served = registry.catalog.content_hash() if registry.catalog else None
        for version in registry.versions():
            print(describe(version, version == current, _metadata(registry, version), served))
        if not args.version and not args.list:
            print("nbo promote: name a VERSION to promote (see the list above)", file=sys.stderr)
            return 2
        return 0
    if args.require_ope_not_worse:
        from services.commands.ope import OpeInputError, not_worse_check

        try:
            passed, line = not_worse_check(settings, args.version, args.decisions, args.outcomes, args.events,
                                           args.ope_margin, args.catalog)
        except (OpeInputError, RegistryError, ValueError) as exc:
            print(f"nbo promote: {exc}; current stays {registry.current_version()}", file=sys.stderr)
            return 2
        print(line)
        if not passed:
            print(f"nbo promote: not promoted; current stays {registry.current_version()}", file=sys.stderr)
            return 1
    try:
        reasons = gate_reasons(registry.metadata(args.version))
        if reasons and not args.force:
            print(f"nbo promote: {args.version} is refused: " + "; ".join(reasons) + ". Give a longer history and "
                  f"retrain (nbo train --promote), or promote it anyway with nbo promote {args.version} --force (recorded "
                  f"as forced); current stays {registry.current_version()}", file=sys.stderr)
            return 1
        registry.promote(args.version, forced=bool(reasons), overrode=reasons)
    except RegistryError as exc:
        print(f"nbo promote: {exc}; current stays {registry.current_version()}", file=sys.stderr)
        return 1
    problem = announce(settings, args.version)
    if problem is not None:
        print(f"nbo promote: {args.version} is current in {registry.root} but {problem}; the API replicas "
              "following Redis keep their model: run nbo promote again", file=sys.stderr)
        return 1
    print(f"current model is now {args.version}" + (" (forced past the promotion gate: " + "; ".join(reasons) + ")"
                                                   if reasons else ""))
    return 0


def gate_reasons(meta: dict) -> list[str]:
    """Why the promotion gate refuses the version whose metadata this is (empty: it passed)."""
    gate = (meta.get("training") or {}).get("promotion_gate")
    if gate is None:
        return ["no promotion-gate verdict in its metadata (trained before the gate, or by the demo): it was never "
                "validated against popularity"]
    return [] if gate.get("passed") else list(gate.get("reasons") or ["the promotion gate refused it"])


def announce(settings: Settings, version: str) -> str | None:
    """With ``NBO_API__CONTROL_SOURCE=redis``: the version stored in Redis and announced to the
    API replicas; None when done (or not asked for), else what went wrong."""
    if settings.api.control_source != "redis":
        return None
    import redis

    from adapters.shared_control import MODEL
    from bootstrap import SettingsError, control_store

    try:
        control = control_store(settings)
    except SettingsError as exc:
        return str(exc)
    try:
        control.put(MODEL, version)
    except (redis.RedisError, OSError) as exc:
        return f"Redis could not be told ({type(exc).__name__}: {exc})"
    finally:
        control.close()
    return None


def _metadata(registry: ModelRegistry, version: str) -> dict:
    try:
        return registry.metadata(version)
    except RegistryError as exc:
        return {"error": str(exc)}


def describe(version: str, current: bool, meta: dict, served_catalog: str | None) -> str:
    """One line per version: created, data window, size, metrics, catalog (and whether it is the
    one in use), so an operator can tell versions apart before promoting one."""
    if "error" in meta:
        return f"{'*' if current else ' '} {version}  unreadable: {meta['error']}"
    training = meta.get("training", {})
    windows = meta.get("data_window", {}).get("windows") or []
    window = f"{windows[0][0][:10]}..{windows[-1][1][:10]}" if windows else "window unknown"
    size = (f"{training['customers']:,} customers, {training['purchases']:,} purchases"
            if {"customers", "purchases"} <= set(training) else "size unknown")
    catalog = str(meta.get("catalog_hash", "?"))[:12]
    if served_catalog is not None and meta.get("catalog_hash") != served_catalog:
        catalog += " (not the catalog in use: cannot be promoted)"
    metrics = meta.get("metrics") or {}
    parts = [f"created {meta.get('created_at', '?')}", f"data {window}", size, f"catalog {catalog}"]
    gate = training.get("promotion_gate")
    if gate is not None:
        parts.append("gate passed" if gate.get("passed") else "gate refused")
    promotion = meta.get("promotion")
    if promotion is not None:
        parts.append(f"promoted {promotion.get('at', '?')}" + (" FORCED past the gate" if promotion.get("forced") else ""))
    if metrics:
        parts.append("metrics " + json.dumps(metrics, sort_keys=True))
    return f"{'*' if current else ' '} {version}  " + "; ".join(parts)
