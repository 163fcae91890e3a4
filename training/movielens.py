"""MovieLens frame -> the plain arrays every trainer takes (the demo tenant and quality benchmark).

Mapping: every rating is an interaction with weight = the rating (0.5..5); genres -> category ids;
release year -> an ordinal price-bucket-like id (one per year, 0 = unknown); no brand; the title
(without its "(year)" suffix) -> hashed word tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from training.data import Interactions, ItemFeatures, Jagged, hash_tokens

TITLE_BUCKETS = 1 << 14
FIRST_YEAR = 1900
N_YEARS = 130


@dataclass(frozen=True)
class MovieLensArrays:
    interactions: Interactions
    items: ItemFeatures
    user_ids: np.ndarray  # dense customer index -> userId
    movie_ids: np.ndarray  # dense item index -> movieId
    titles: list[str]


def movielens_arrays(df: pd.DataFrame) -> MovieLensArrays:
    user_ids, customer = np.unique(df["userId"].to_numpy(), return_inverse=True)
    movie_ids, item = np.unique(df["movieId"].to_numpy(), return_inverse=True)
    interactions = Interactions(
        customer=customer,
        item=item,
        ts=df["timestamp"].to_numpy(),
        weight=df["rating"].to_numpy(dtype=np.float32),
        n_customers=len(user_ids),
        n_items=len(movie_ids),
    )
    movies = df.drop_duplicates("movieId").set_index("movieId").reindex(movie_ids)[["title", "year", "genres"]]
    genre_lists = [
        [g for g in str(gs).split("|") if g and g != "(no genres listed)"] for gs in movies["genres"].fillna("")
    ]
    vocab = {g: i + 1 for i, g in enumerate(sorted({g for gl in genre_lists for g in gl}))}
    category = Jagged.from_lists([[vocab[g] for g in gl] for gl in genre_lists])
    year = movies["year"].to_numpy(dtype=np.float64)
    year_id = np.where(np.isnan(year), 0, 1 + np.clip(np.nan_to_num(year) - FIRST_YEAR, 0, N_YEARS - 2))
    titles = movies["title"].fillna("").astype(str).str.replace(r"\s*\(\d{4}\)\s*$", "", regex=True).tolist()
    items = ItemFeatures(
        category=category,
        brand=Jagged.from_single(np.zeros(len(movie_ids), dtype=np.int64)),
        price_bucket=Jagged.from_single(year_id.astype(np.int64)),
        title_tokens=hash_tokens(titles, TITLE_BUCKETS),
        n_categories=len(vocab) + 1,
        n_brands=1,
        n_price_buckets=N_YEARS,
        n_title_tokens=TITLE_BUCKETS,
    )
    return MovieLensArrays(interactions, items, user_ids, movie_ids, titles)
