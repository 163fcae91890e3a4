"""The registry's load API: everything serving takes from training, and the only training module serving
imports (an import-linter contract in pyproject.toml holds it to that).

* A version: its row (`ModelVersion`), which one is active (`active_version`, cached under
  `active_version_cache_key`), the local folder of its artifacts (`local_path`, downloaded from the
  object store when there is one) and the artifact classes that load them (`TrainedRetrieval`,
  `TrainedRanker`: weights only, never code).
* Getting a version ready to serve: `activate` once its index exists (`ActivationRefused` says why not),
  `publish` files serving adds to the version's folder, `send_task_by_name` for tasks queued after a commit.
* The catalog a version was trained with, its item co-occurrence table and its online item-feature snapshots,
  files beside its artifacts (`load_item_features`, `load_item_neighbours`, `save_item_snapshot`,
  `load_item_snapshot`, `read_snapshot_pointer`, `snapshot_pointer`).
* The feature definitions, one implementation for training and serving (training/features.py): histories
  (`History`, `make_history`), the ranker's dense columns (`query_columns`, `customer_columns`,
  `CatalogFeatures.taste`, `ItemSnapshot`, `item_snapshot`, `dense_matrix`), its sparse bags
  (`ranker_parts`), the customer tower's keys (`CUSTOMER_KEYS`, `TrainedRetrieval.customer_inputs`) and
  events weighted as training weighs them (`weighted_events`).
* The model classes whose forward passes serving runs in NumPy (`Ranker`, `CustomerTower`:
  serving/forward.py).

Nothing here is new: these names are re-exported from the training modules that define them, so training
and serving share one implementation. Importing this module loads torch (the model classes).
"""

from __future__ import annotations

from training.artifacts import (
    TrainedRanker,
    TrainedRetrieval,
    load_item_features,
    load_item_snapshot,
    read_snapshot_pointer,
    save_item_snapshot,
    snapshot_pointer,
)
from training.cooccurrence import load_item_neighbours
from training.data import CUSTOMER_KEYS, CustomerFeatures, History, ItemFeatures, Jagged, make_history
from training.datasets import weighted_events
from training.features import (
    CatalogFeatures,
    ItemSnapshot,
    customer_columns,
    dense_matrix,
    item_snapshot,
    query_columns,
    ranker_parts,
)
from training.models.ranker import Ranker
from training.models.two_tower import CustomerTower
from training.registry.lifecycle import (
    ActivationRefused,
    activate,
    active_version,
    active_version_cache_key,
    send_task_by_name,
)
from training.registry.models import ModelVersion
from training.registry.storage import local_path, publish

__all__ = [
    "CUSTOMER_KEYS",
    "ActivationRefused",
    "CatalogFeatures",
    "CustomerFeatures",
    "CustomerTower",
    "History",
    "ItemFeatures",
    "ItemSnapshot",
    "Jagged",
    "ModelVersion",
    "Ranker",
    "TrainedRanker",
    "TrainedRetrieval",
    "activate",
    "active_version",
    "active_version_cache_key",
    "customer_columns",
    "dense_matrix",
    "item_snapshot",
    "load_item_features",
    "load_item_neighbours",
    "load_item_snapshot",
    "local_path",
    "make_history",
    "publish",
    "query_columns",
    "ranker_parts",
    "read_snapshot_pointer",
    "save_item_snapshot",
    "send_task_by_name",
    "snapshot_pointer",
    "weighted_events",
]
