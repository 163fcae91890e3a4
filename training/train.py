"""The training entry points in one place (the Celery task, `manage.py train`, tests, benchmarks).

- `train_two_tower`: retrieval model -> `TrainedRetrieval`
- `train_ranker`: DLRM on stacked examples -> `TrainedRanker`
- `train_pipeline`: both, wired without leakage -> `TrainedPipeline`
"""

from training.artifacts import TrainedRanker, TrainedRetrieval
from training.pipeline import TrainedPipeline, recommend, train_pipeline
from training.trainers.ranker import train_ranker
from training.trainers.two_tower import train_two_tower

__all__ = [
    "TrainedPipeline",
    "TrainedRanker",
    "TrainedRetrieval",
    "recommend",
    "train_pipeline",
    "train_ranker",
    "train_two_tower",
]
