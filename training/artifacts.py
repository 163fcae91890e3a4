"""What a training run hands to the registry and to serving: state dicts, arrays, a JSON manifest.

Artifacts are loaded with `torch.load(weights_only=True)` and `np.load(allow_pickle=False)`, so an
artifact directory can never execute code when it is read.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.data import (
    CUSTOMER_KEYS,
    CustomerFeatures,
    History,
    HistoryIndex,
    Interactions,
    ItemFeatures,
    Jagged,
    build_kjt,
    customer_parts,
    item_kjt,
    make_history,
)
from training.features import ITEM_FEATURES, ItemSnapshot
from training.models.ranker import Ranker, RankerConfig
from training.models.two_tower import CustomerTower, ItemTower, TwoTowerConfig

FORMAT_VERSION = 1


def _write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))


def _read_manifest(path: Path, kind: str) -> dict[str, Any]:
    manifest = json.loads((Path(path) / "manifest.json").read_text())
    if manifest.get("kind") != kind:
        raise ValueError(f"{path} holds a {manifest.get('kind')!r} artifact, not {kind!r}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"unsupported artifact format {manifest.get('format_version')}")
    return manifest


def _load_state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)


@dataclass
class TrainedRetrieval:
    """A trained two-tower model, ready to embed customers and items on CPU."""

    config: TwoTowerConfig
    hparams: dict[str, Any]
    customer_tower_state: dict[str, torch.Tensor]
    item_tower_state: dict[str, torch.Tensor]
    item_embeddings: np.ndarray
    metrics: dict[str, Any] = field(default_factory=dict)
    _customer_tower: CustomerTower | None = field(default=None, repr=False)
    _item_tower: ItemTower | None = field(default=None, repr=False)

    @property
    def history_len(self) -> int:
        return int(self.hparams["history_len"])

    @property
    def recency_decay(self) -> float:
        return float(self.hparams["recency_decay"])

    def customer_tower(self) -> CustomerTower:
        if self._customer_tower is None:
            tower = CustomerTower(self.config)
            tower.load_state_dict(self.customer_tower_state)
            self._customer_tower = tower.eval()
        return self._customer_tower

    def item_tower(self) -> ItemTower:
        if self._item_tower is None:
            tower = ItemTower(self.config)
            tower.load_state_dict(self.item_tower_state)
            self._item_tower = tower.eval()
        return self._item_tower

    def customer_inputs(
        self, customers: np.ndarray, history: History, customer_features: CustomerFeatures | None = None
    ) -> tuple[list[Jagged], list[np.ndarray]]:
        """The customer tower's per-key bags and their weights (CUSTOMER_KEYS order) for these customers:
        what `embed_customers` feeds the tower, and serving its NumPy forward (serving/forward.py).

        A customer index < 0 or >= n_customers is treated as unknown to the model (history and
        attributes only).
        """
        customers = np.asarray(customers, dtype=np.int64)
        customers = np.where(customers < self.config.n_customers, customers, -1)
        return customer_parts(customers, history, customer_features)

    @torch.no_grad()
    def embed_customers(
        self,
        customers: np.ndarray,
        history: History,
        customer_features: CustomerFeatures | None = None,
    ) -> np.ndarray:
        """Customer embeddings from explicit histories (e.g. the session's latest events), through the
        tower's own forward; see `customer_inputs` for unknown customers."""
        kjt = build_kjt(CUSTOMER_KEYS, *self.customer_inputs(customers, history, customer_features), None)
        return self.customer_tower()(kjt).numpy().astype(np.float32)

    def session_history(
        self, items: Sequence[Sequence[int]], weights: Sequence[Sequence[float]] | None = None
    ) -> History:
        """Histories from per-customer item lists (oldest first, e.g. the session's latest
        events), cut and weighted with this model's own history length and recency decay."""
        return make_history(items, weights, max_len=self.history_len, recency_decay=self.recency_decay)

    def history_for(self, events: Interactions | HistoryIndex, customers: np.ndarray) -> History:
        """Each customer's latest events, cut and weighted exactly as during training.

        Pass a prebuilt `HistoryIndex` when calling repeatedly over the same events.
        """
        index = events if isinstance(events, HistoryIndex) else HistoryIndex(events)
        return index.latest(np.asarray(customers, dtype=np.int64), self.history_len, self.recency_decay)

    def embed_known_customers(
        self,
        events: Interactions | HistoryIndex,
        customers: np.ndarray,
        customer_features: CustomerFeatures | None = None,
    ) -> np.ndarray:
        """Embeddings of customers from their latest events in `events` (all rows must index
        customers of those events)."""
        return self.embed_customers(customers, self.history_for(events, customers), customer_features)

    @torch.no_grad()
    def embed_items(self, features: ItemFeatures, item_ids: np.ndarray | None = None, chunk: int = 8192) -> np.ndarray:
        """Embeddings of the items described by `features` (one per row), without retraining.

        `item_ids` gives each row's index in the trained catalog (default: the row number); an
        id < 0 or >= the trained catalog size is a new product, embedded from its features alone.
        """
        n = features.n_items
        ids = np.arange(n) if item_ids is None else np.asarray(item_ids, dtype=np.int64)
        ids = np.where((ids >= 0) & (ids < self.config.n_items), ids, -1)
        tower = self.item_tower()
        out = []
        for lo in range(0, n, chunk):
            rows = np.arange(lo, min(lo + chunk, n))
            out.append(tower(item_kjt(features, rows, ids=ids[rows])).numpy())
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, self.config.dim), np.float32)

    def save(self, path: str | Path) -> None:
        path = Path(path)
        _write_manifest(
            path,
            {
                "kind": "two_tower",
                "format_version": FORMAT_VERSION,
                "config": self.config.to_dict(),
                "hparams": self.hparams,
                "metrics": self.metrics,
                "item_embeddings_shape": list(self.item_embeddings.shape),
            },
        )
        torch.save(self.customer_tower_state, path / "customer_tower.pt")
        torch.save(self.item_tower_state, path / "item_tower.pt")
        np.save(path / "item_embeddings.npy", self.item_embeddings)

    @classmethod
    def load(cls, path: str | Path, *, mmap_embeddings: bool = False) -> TrainedRetrieval:
        """`mmap_embeddings`: the item embeddings as a memory map, not read into memory (a table above a
        serving process's budget, read through its row shards: serving/shards.py). Copy-on-write, so torch
        takes it as a tensor without a warning; nothing writes to it."""
        path = Path(path)
        manifest = _read_manifest(path, "two_tower")
        return cls(
            config=TwoTowerConfig(**manifest["config"]),
            hparams=manifest["hparams"],
            customer_tower_state=_load_state(path / "customer_tower.pt"),
            item_tower_state=_load_state(path / "item_tower.pt"),
            item_embeddings=np.load(path / "item_embeddings.npy", allow_pickle=False,
                                    mmap_mode="c" if mmap_embeddings else None),
            metrics=manifest.get("metrics", {}),
        )


@dataclass
class TrainedRanker:
    """A trained DLRM ranker plus the feature standardisation it was trained with."""

    config: RankerConfig
    hparams: dict[str, Any]
    state: dict[str, torch.Tensor]
    metrics: dict[str, Any] = field(default_factory=dict)
    _model: Ranker | None = field(default=None, repr=False)

    def model(self) -> Ranker:
        if self._model is None:
            model = Ranker(self.config)
            model.load_state_dict(self.state)
            self._model = model.eval()
        return self._model

    def save(self, path: str | Path) -> None:
        path = Path(path)
        _write_manifest(
            path,
            {
                "kind": "dlrm_ranker",
                "format_version": FORMAT_VERSION,
                "config": self.config.to_dict(),
                "hparams": self.hparams,
                "metrics": self.metrics,
            },
        )
        torch.save(self.state, path / "ranker.pt")

    @classmethod
    def load(cls, path: str | Path) -> TrainedRanker:
        path = Path(path)
        manifest = _read_manifest(path, "dlrm_ranker")
        return cls(
            config=RankerConfig.from_dict(manifest["config"]),
            hparams=manifest["hparams"],
            state=_load_state(path / "ranker.pt"),
            metrics=manifest.get("metrics", {}),
        )


# ---------------------------------------------------------------------------------------------
# The catalog a version was trained with, and its online item-feature snapshots.

ITEM_FEATURES_FILE = "item_features.npz"
_JAGGED_FIELDS = ("category", "brand", "price_bucket", "title_tokens")
_VOCAB_FIELDS = ("n_categories", "n_brands", "n_price_buckets", "n_title_tokens")


def save_item_features(folder: str | Path, items: ItemFeatures) -> None:
    """The version's ItemFeatures (vocabulary ids as trained), for serving's ranker and taste features:
    rebuilding them from today's catalog would renumber categories and brands."""
    arrays: dict[str, np.ndarray] = {}
    for name in _JAGGED_FIELDS:
        jag: Jagged = getattr(items, name)
        arrays[f"{name}_values"], arrays[f"{name}_lengths"] = jag.values, jag.lengths
    for name in _VOCAB_FIELDS:
        arrays[name] = np.array(getattr(items, name), dtype=np.int64)
    np.savez(Path(folder) / ITEM_FEATURES_FILE, **arrays)


def load_item_features(folder: str | Path) -> ItemFeatures | None:
    """The version's ItemFeatures, or None for artifacts written before they were saved."""
    path = Path(folder) / ITEM_FEATURES_FILE
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as z:
        jagged = {name: Jagged(z[f"{name}_values"], z[f"{name}_lengths"]) for name in _JAGGED_FIELDS}
        vocab = {name: int(z[name]) for name in _VOCAB_FIELDS}
    return ItemFeatures(**jagged, **vocab)


SNAPSHOT_DIR = "online"
SNAPSHOT_POINTER = "current.json"
SNAPSHOTS_KEPT = 2  # the current one and its predecessor (a process may still be switching over)


# The only names a pointer may give: the pointer is a file among the version's artifacts (it can come from
# the object store), so a name with a separator or `..` would have numpy open any file the process can read.
_SNAPSHOT_FILE = re.compile(r"items-[0-9]{1,20}-[0-9a-f]{12}\.npy")


def snapshot_file(folder: str | Path, pointer: dict[str, Any]) -> Path:
    """The snapshot file `pointer` names, refused (ValueError) unless it is a name save_item_snapshot makes."""
    name = pointer.get("file")
    if not isinstance(name, str) or not _SNAPSHOT_FILE.fullmatch(name):
        raise ValueError(f"{folder}: the item snapshot pointer names {name!r}, not a snapshot file")
    return Path(folder) / SNAPSHOT_DIR / name


def snapshot_pointer(folder: str | Path) -> Path:
    """The small file naming a version's current snapshot; its mtime tells readers to reload."""
    return Path(folder) / SNAPSHOT_DIR / SNAPSHOT_POINTER


def save_item_snapshot(folder: str | Path, snapshot: ItemSnapshot) -> Path:
    """Publish `snapshot` as the version's current one, atomically: the matrix goes to a new file, then
    the pointer is replaced in one rename. Readers that mapped an older file keep their pages (POSIX),
    and an older snapshot never replaces a newer one (two builders racing)."""
    directory = Path(folder) / SNAPSHOT_DIR
    directory.mkdir(parents=True, exist_ok=True)
    current = read_snapshot_pointer(folder)
    if current is not None and int(current["as_of"]) > snapshot.as_of:
        return snapshot_file(folder, current)
    name = f"items-{snapshot.as_of}-{uuid.uuid4().hex[:12]}.npy"
    tmp = directory / f".{name}.tmp"
    with open(tmp, "wb") as f:
        np.save(f, np.ascontiguousarray(snapshot.columns, dtype=np.float32))
    os.replace(tmp, directory / name)
    pointer = {
        "file": name,
        "as_of": snapshot.as_of,
        "built_at": time.time(),
        "columns": list(ITEM_FEATURES),
        "n_items": snapshot.n_items,
        "n_events": snapshot.n_events,
        "global_mean_weight": snapshot.global_mean_weight,
        "format_version": FORMAT_VERSION,
    }
    tmp_pointer = directory / f".{SNAPSHOT_POINTER}.{uuid.uuid4().hex[:12]}.tmp"
    tmp_pointer.write_text(json.dumps(pointer, sort_keys=True))
    os.replace(tmp_pointer, directory / SNAPSHOT_POINTER)
    files = sorted(directory.glob("items-*.npy"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for old in files[SNAPSHOTS_KEPT:]:
        if old.name != name:
            old.unlink(missing_ok=True)
    return directory / name


def read_snapshot_pointer(folder: str | Path) -> dict[str, Any] | None:
    path = snapshot_pointer(folder)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def load_item_snapshot(folder: str | Path, *, mmap: bool = True) -> ItemSnapshot | None:
    """The version's current snapshot (memory-mapped: every process shares the page cache), or None if
    none was built yet. A snapshot of other feature columns (older code) is refused clearly."""
    pointer = read_snapshot_pointer(folder)
    if pointer is None:
        return None
    if tuple(pointer.get("columns", ())) != ITEM_FEATURES:
        raise ValueError(f"{folder}: item snapshot columns {pointer.get('columns')} are not {list(ITEM_FEATURES)}")
    columns = np.load(snapshot_file(folder, pointer), mmap_mode="r" if mmap else None, allow_pickle=False)
    if columns.shape != (int(pointer["n_items"]), len(ITEM_FEATURES)):
        raise ValueError(f"{folder}: item snapshot has shape {columns.shape}")
    return ItemSnapshot(columns, int(pointer["as_of"]), float(pointer["global_mean_weight"]), int(pointer["n_events"]))
