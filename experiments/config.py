"""A variant's serving configuration: a small JSON object validated here (pydantic), honoured by the
recommendation view (recs/api/recommend_views.py passes it to serving.answers).

Only what serving honours today is accepted:

- `ranker` (default true): false orders the filtered candidates by their retrieval score instead of the
  DLRM ranker's (serving.answers.retrieval_order; `explain` shows `scoring: retrieval:ranker_off`).
- `model_version`: only "active" (the shop's active version). Serving loads the active version alone; a pin
  to another version is refused rather than silently ignored.

Retrieval depth, the bandit and per-variant rule sets are not accepted until serving can honour them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError


class VariantConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    model_version: Literal["active"] = "active"
    ranker: bool = True


def validate_config(data: object) -> dict:
    """The config with its defaults filled in; ValueError naming the field when it is not valid."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError("must be a JSON object")
    try:
        return VariantConfig.model_validate(data).model_dump()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        if first["type"] == "extra_forbidden":
            raise ValueError(f"{where}: unknown setting (accepted: model_version, ranker)") from None
        if where == "model_version":
            raise ValueError('model_version: only "active" is served today (serving loads the active version)'
                             ) from None
        raise ValueError(f"{where}: {first['msg']}") from None
