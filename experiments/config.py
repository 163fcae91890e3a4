"""A variant's serving configuration: a small JSON object validated here (pydantic), honoured by the
recommendation view (recs/api/recommend_views.py passes it to serving.answers).

Only what serving honours today is accepted:

- `ranker` (default true): false orders the filtered candidates by their retrieval score instead of the
  DLRM ranker's (serving.answers.retrieval_order; `explain` shows `scoring: retrieval:ranker_off`).
- `model_version`: only "active" (the shop's active version). Serving loads the active version alone; a pin
  to another version is refused rather than silently ignored.
- `bandit` (default false): true reorders the answer's head by Thompson sampling (serving/bandit.py), with
  `bandit_reward` (click, add_to_cart, purchase, revenue), `bandit_head` (how many head slots may move,
  2-20), `bandit_explore_share` (the largest share of answers that may deviate from the ranker's order,
  0-1) and `bandit_half_life_hours` (how fast old evidence fades); these are refused without `bandit`.

Retrieval depth and per-variant rule sets are not accepted until serving can honour them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

BANDIT_SETTINGS = ("bandit_reward", "bandit_head", "bandit_explore_share", "bandit_half_life_hours")
ACCEPTED = ("model_version", "ranker", "bandit", *BANDIT_SETTINGS)


class VariantConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    model_version: Literal["active"] = "active"
    ranker: bool = True
    bandit: bool = False
    bandit_reward: Literal["click", "add_to_cart", "purchase", "revenue"] = "click"
    bandit_head: Annotated[int, Field(ge=2, le=20)] = 5
    bandit_explore_share: Annotated[float, Field(ge=0, le=1)] = 1.0
    bandit_half_life_hours: Annotated[float, Field(gt=0, le=24 * 365)] = 336.0

    @model_validator(mode="after")
    def _bandit_settings_need_the_bandit(self) -> VariantConfig:
        if not self.bandit:
            given = sorted(self.model_fields_set & set(BANDIT_SETTINGS))
            if given:
                raise ValueError(f"{given[0]}: only with bandit true")
        return self


def validate_config(data: object) -> dict:
    """The config with its defaults filled in; ValueError naming the field when it is not valid."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError("must be a JSON object")
    try:
        config = VariantConfig.model_validate(data)
        # Without the bandit its settings are left out: a stored configuration validates again as it is, and
        # configurations written before the bandit existed read the same.
        return config.model_dump(exclude=None if config.bandit else {"bandit", *BANDIT_SETTINGS})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        if first["type"] == "extra_forbidden":
            raise ValueError(f"{where}: unknown setting (accepted: {', '.join(ACCEPTED)})") from None
        if first["type"] == "value_error":  # the model validator's own sentence, which names the field
            raise ValueError(str(first["ctx"]["error"])) from None
        if where == "model_version":
            raise ValueError('model_version: only "active" is served today (serving loads the active version)'
                             ) from None
        raise ValueError(f"{where}: {first['msg']}") from None
