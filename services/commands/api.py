"""``nbo api``: serve the offer API with uvicorn (host, port, workers from NBO_API__*)."""

from __future__ import annotations

import argparse
import os

from bootstrap.settings import load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])


def run(args: argparse.Namespace) -> int:
    import uvicorn

    # Each worker process scores on one core; OpenBLAS threads would only spin against the others.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    settings = load_settings()
    uvicorn.run("services.api.app:create_app", factory=True, host=settings.api.host, port=settings.api.port,
                workers=settings.api.workers, log_level=args.log_level, access_log=False,
                http="httptools" if _has("httptools") else "h11", loop="uvloop" if _has("uvloop") else "asyncio")
    return 0


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
