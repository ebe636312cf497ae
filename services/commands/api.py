"""``nbo api``: serve the offer API with uvicorn. Host, port and worker processes come from
``NBO_API__HOST``, ``NBO_API__PORT`` and ``NBO_API__WORKERS``; ``--host``, ``--port`` and
``--workers`` override them."""

from __future__ import annotations

import argparse
import os

from bootstrap.settings import Settings, load_settings

LOG_LEVELS = ["debug", "info", "warning", "error"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=None,
                        help="interface to listen on (default NBO_API__HOST, else 127.0.0.1)")
    parser.add_argument("--port", type=_bounded(0, 65535), default=None,
                        help="TCP port to listen on; 0 picks a free one (default NBO_API__PORT, else 8000)")
    parser.add_argument("--workers", type=_bounded(1, 64), default=None,
                        help="worker processes, each scoring on one core (default NBO_API__WORKERS, else 1)")
    parser.add_argument("--log-level", default="warning", choices=LOG_LEVELS, help="uvicorn's log level")


def _bounded(low: int, high: int):  # type: ignore[no-untyped-def]
    def parse(text: str) -> int:
        if not text.isdigit() or not low <= int(text) <= high:
            raise argparse.ArgumentTypeError(f"expected a whole number from {low} to {high}, got {text!r}")
        return int(text)
    return parse


def settings_for(args: argparse.Namespace) -> Settings:
    """The settings with ``--host``, ``--port`` and ``--workers`` applied (validated like the variables)."""
    overrides = {name: value for name, value in
                 (("host", args.host), ("port", args.port), ("workers", args.workers)) if value is not None}
    settings = load_settings()
    if not overrides:
        return settings
    return load_settings(api={**settings.api.model_dump(), **overrides})


def run(args: argparse.Namespace) -> int:
    import uvicorn

    # Each worker process scores on one core; OpenBLAS threads would only spin against the others.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    settings = settings_for(args)
    # The app factory reads the settings again in each worker process: pass the overrides on.
    os.environ["NBO_API__HOST"] = settings.api.host
    os.environ["NBO_API__PORT"] = str(settings.api.port)
    os.environ["NBO_API__WORKERS"] = str(settings.api.workers)
    uvicorn.run("services.api.app:create_app", factory=True, host=settings.api.host, port=settings.api.port,
                workers=settings.api.workers, log_level=args.log_level, access_log=False,
                http="httptools" if _has("httptools") else "h11", loop="uvloop" if _has("uvloop") else "asyncio")
    return 0


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
