"""The release parameters, from the settings (docs/configuration.md)."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from privacy.bounding import Bounds
from privacy.shared_model import SharedParams

KINDS = ("product_popularity", "category_popularity", "product_trend", "co_purchase")
# product_trend counts only the last TREND_DAYS before the release (within its window).
TREND_DAYS = 7
# co_purchase counts pairs among this many keys of the newest product_popularity release (its largest values:
# a released aggregate, so choosing the domain from it reveals nothing more).
CO_PURCHASE_TOP_KEYS = 50


@dataclass(frozen=True)
class ReleaseParams:
    epsilon: float  # charged to every contributing shop
    bounds: Bounds
    shop_cap: float  # one shop's per-key count is clipped to [0, shop_cap] before aggregation
    min_shops: int  # fewer contributing shops: nothing is released
    trim_fraction: float  # of the shops, cut from each end of every key's values
    max_keys_released: int  # the release keeps the keys with the largest noisy values (post-processing)


def release_params(**overrides) -> ReleaseParams:
    values = {
        "epsilon": settings.RECSVC_PRIVACY_RELEASE_EPSILON,
        "bounds": Bounds(max_keys=settings.RECSVC_PRIVACY_MAX_KEYS_PER_CUSTOMER, max_per_key=1),
        "shop_cap": float(settings.RECSVC_PRIVACY_SHOP_CAP),
        "min_shops": 3,
        "trim_fraction": 0.1,
        "max_keys_released": 5000,
    }
    values.update(overrides)
    return ReleaseParams(**values)


def shared_model_params(**overrides) -> SharedParams:
    """The shared cold-start model's DP-SGD run (privacy/shared_model.py), from the settings."""
    values = {"epsilon": settings.RECSVC_PRIVACY_SHARED_MODEL_EPSILON,
              "delta": settings.RECSVC_PRIVACY_SHARED_MODEL_DELTA}
    values.update(overrides)
    return SharedParams(**values)
