"""A tenant's rules, promotions, boosts and recommendation settings: validation and persistence.

serving/rules.py compiles what these functions store; recs/api/rules_views.py and the dashboard's
rules page call them.
"""

from recs.rules.predicates import Condition, parse_conditions
from recs.rules.service import (
    create_boost,
    create_promotion,
    create_rule,
    current_values,
    delete_boost,
    delete_promotion,
    delete_rule,
    settings_for,
    update_boost,
    update_promotion,
    update_rule,
    update_settings,
    validate_boost,
    validate_endpoints,
    validate_promotion,
    validate_rule,
    validate_rule_params,
    validate_settings,
)

__all__ = [
    "Condition",
    "create_boost",
    "create_promotion",
    "create_rule",
    "current_values",
    "delete_boost",
    "delete_promotion",
    "delete_rule",
    "parse_conditions",
    "settings_for",
    "update_boost",
    "update_promotion",
    "update_rule",
    "update_settings",
    "validate_boost",
    "validate_endpoints",
    "validate_promotion",
    "validate_rule",
    "validate_rule_params",
    "validate_settings",
]
