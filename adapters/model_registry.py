"""Versioned model artifacts on files, and which version is current.

Layout under ``root``::

    versions/<version>/model.npz   arrays: factors, weights, id maps (no pickle)
    versions/<version>/meta.json   version, created_at, catalog_hash, data window, params,
                                   metrics, sha256 of model.npz; ``promotion`` once promoted
                                   (when, and whether it was forced past the promotion gate)
    CURRENT                        the promoted version (one line)

Every write goes to a temporary name in the same directory and is renamed into place, so a
reader sees either the old or the new file, never half of one. ``load`` checks the file hash and
the catalog hash and raises ``RegistryError`` on any mismatch, so a service that polls
``current_version()`` can keep its old model when the new one is broken.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from domain.catalog import Catalog
from recommender.model import ModelParams, NboModel

CURRENT_FILE = "CURRENT"
MODEL_FILE = "model.npz"
META_FILE = "meta.json"
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,80}$")


class RegistryError(Exception):
    """A version that does not exist, is corrupt, or was trained for another catalog."""


def model_to_bytes(model: NboModel) -> bytes:
    segments = sorted(model.segment_popularity)
    arrays = {
        "product_ids": np.array(model.product_ids, dtype=str),
        "token_ids": np.array(model.token_ids, dtype=str),
        "item_factors": model.item_factors.astype(np.float32),
        "coef": model.coef.astype(np.float32),
        "factor_coef": model.factor_coef.astype(np.float32),
        "bias": model.bias.astype(np.float64),
        "similar": model.similar.astype(np.float32),
        "single_hold": model.single_hold.astype(bool),
        "segment_names": np.array(segments, dtype=str),
        "segment_popularity": (np.stack([model.segment_popularity[s] for s in segments])
                               if segments else np.zeros((0, len(model.product_ids)))),
    }
    if model.transitions is not None:
        arrays["transitions"] = model.transitions.astype(np.float32)
    if model.label_counts is not None:
        arrays["label_counts"] = model.label_counts.astype(np.float64)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def model_from_bytes(data: bytes, version: str, params: ModelParams, metadata: Mapping[str, Any]) -> NboModel:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        segments = [str(s) for s in z["segment_names"]]
        seg_pop = z["segment_popularity"]
        return NboModel(
            version=version,
            product_ids=tuple(str(p) for p in z["product_ids"]),
            token_ids=tuple(str(t) for t in z["token_ids"]),
            params=params,
            item_factors=z["item_factors"].astype(np.float64),
            coef=z["coef"].astype(np.float64),
            factor_coef=z["factor_coef"].astype(np.float64),
            bias=z["bias"].astype(np.float64),
            similar=z["similar"].astype(np.float64),
            single_hold=z["single_hold"].astype(bool),
            segment_popularity={s: seg_pop[i].astype(np.float64) for i, s in enumerate(segments)},
            metadata=dict(metadata),
            # absent from artifacts saved before the after-purchase transitions: boost by ``similar``
            transitions=z["transitions"].astype(np.float64) if "transitions" in z.files else None,
            # absent from artifacts saved before the shrinkage toward popularity: none is applied
            label_counts=z["label_counts"].astype(np.float64) if "label_counts" in z.files else None,
        )


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ModelRegistry:
    """Model artifacts under ``root``. ``catalog`` (optional): refuse models trained for another one."""

    def __init__(self, root: Path, catalog: Catalog | None = None) -> None:
        self.root = Path(root)
        self.catalog = catalog

    @property
    def versions_dir(self) -> Path:
        return self.root / "versions"

    def save(self, model: NboModel, metadata: Mapping[str, Any] | None = None, version: str | None = None) -> str:
        """Write a new version (not current until promoted) and return its name.

        ``metadata`` should hold ``catalog_hash``, ``data_window`` and ``metrics``; ``created_at``
        (ISO UTC) is added when missing. The version is ``<UTC time>-<6 hex>`` unless given."""
        meta = dict(model.metadata)
        meta.update(metadata or {})
        now = time.time()
        meta.setdefault("created_at", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)))
        if version is None:
            version = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now)) + "-" + secrets.token_hex(3)
        if not _VERSION.match(version):
            raise RegistryError(f"invalid version name {version!r}: letters, digits, '.', '_', '-' only")
        if "catalog_hash" not in meta:
            if self.catalog is None:
                raise RegistryError("metadata needs a catalog_hash (or give the registry the catalog)")
            meta["catalog_hash"] = self.catalog.content_hash()
        target = self.versions_dir / version
        if target.exists():
            raise RegistryError(f"version {version!r} already exists")
        blob = model_to_bytes(model)
        meta.update(version=version, params=model.params.to_dict(), sha256=hashlib.sha256(blob).hexdigest(),
                    product_ids=list(model.product_ids), tokens=len(model.token_ids))
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=self.versions_dir))
        try:
            (staging / MODEL_FILE).write_bytes(blob)
            (staging / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n",
                                             encoding="utf-8")
            os.chmod(staging, 0o755)
            os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return version

    def versions(self) -> list[str]:
        if not self.versions_dir.exists():
            return []
        return sorted(p.name for p in self.versions_dir.iterdir() if p.is_dir() and not p.name.startswith("."))

    def metadata(self, version: str) -> dict[str, Any]:
        path = self.versions_dir / version / META_FILE
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RegistryError(f"no model version {version!r} in {self.root}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RegistryError(f"model version {version!r}: corrupt {META_FILE} ({exc})") from None

    def current_version(self) -> str | None:
        """The promoted version, or None when nothing was promoted. A small file read."""
        try:
            text = (self.root / CURRENT_FILE).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return text or None

    def load(self, version: str | None = None, catalog: Catalog | None = None) -> NboModel:
        """Load ``version`` (default: current). Raises ``RegistryError`` when it is missing,
        corrupt, or its catalog hash differs from ``catalog`` (or the registry's catalog)."""
        version = version or self.current_version()
        if version is None:
            raise RegistryError(f"no current model in {self.root}; train one and run nbo promote")
        meta = self.metadata(version)
        try:
            blob = (self.versions_dir / version / MODEL_FILE).read_bytes()
        except FileNotFoundError:
            raise RegistryError(f"model version {version!r}: {MODEL_FILE} is missing") from None
        if hashlib.sha256(blob).hexdigest() != meta.get("sha256"):
            raise RegistryError(f"model version {version!r}: {MODEL_FILE} does not match its sha256 (corrupt)")
        expected = catalog or self.catalog
        if expected is not None and meta.get("catalog_hash") != expected.content_hash():
            raise RegistryError(
                f"model version {version!r} was trained for catalog {str(meta.get('catalog_hash'))[:12]}, "
                f"the catalog in use is {expected.content_hash()[:12]}; retrain")
        try:
            model = model_from_bytes(blob, version, ModelParams.from_dict(meta.get("params", {})), meta)
        except Exception as exc:  # a readable hash but unusable arrays
            raise RegistryError(f"model version {version!r}: unreadable arrays ({exc})") from None
        if expected is not None and model.product_ids != expected.ids:
            raise RegistryError(f"model version {version!r}: product order differs from the catalog; retrain")
        return model

    def promote(self, version: str, catalog: Catalog | None = None, *, forced: bool = False,
                overrode: Sequence[str] = ()) -> None:
        """Make ``version`` current after checking it loads (atomic replace of ``CURRENT``).
        ``forced``: it was promoted past the promotion gate's refusal, whose reasons are
        ``overrode``; the version's metadata records it (``promotion``: at, forced, overrode)."""
        self.load(version, catalog)
        meta = self.metadata(version)
        meta["promotion"] = promotion_record(forced, overrode)
        _atomic_write(self.versions_dir / version / META_FILE,
                      (json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n").encode("utf-8"))
        self.root.mkdir(parents=True, exist_ok=True)
        _atomic_write(self.root / CURRENT_FILE, (version + "\n").encode("utf-8"))


def promotion_record(forced: bool, overrode: Sequence[str]) -> dict[str, Any]:
    """The ``promotion`` entry of a version's metadata: when (ISO UTC), forced or not, and the
    gate's reasons it overrode."""
    return {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "forced": bool(forced),
            "overrode": list(overrode)}
