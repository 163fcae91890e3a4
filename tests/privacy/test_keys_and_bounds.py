"""The shared vocabulary and the per-customer contribution bounds (pure functions)."""

from __future__ import annotations

from collections import Counter

from privacy.bounding import Bounds, bounded_counts
from privacy.keys import category_key, product_key, valid_gtin


def test_an_ean13_and_the_same_upca_meet_on_one_gtin_key():
    ean = product_key(title="Mug", attributes={"EAN": "0036000291452"})
    upc = product_key(title="Other title", brand="Other", attributes={"upc": "036000291452"})
    assert ean == upc == "gtin:00036000291452"


def test_a_code_with_a_wrong_check_digit_is_not_a_gtin():
    assert valid_gtin("036000291453") is None
    assert product_key(title="Mug", brand="Acmé ", category_path=["Home", "Kitchen"],
                       attributes={"gtin": "036000291453"}) == "bc:acme|home/kitchen"


def test_without_brand_or_category_the_title_tokens_are_the_key():
    assert product_key(title="The Blue  Mug, for tea!") == product_key(title="mug blue tea") == "t:blue mug tea"
    assert product_key(title="a") is None
    assert category_key([" Home ", "Küche"]) == "c:home/kuche"


def test_one_customer_counts_for_at_most_max_keys_keys_and_max_per_key_each():
    bounds = Bounds(max_keys=2, max_per_key=1)
    # newest first: customer 1 touched a, b, c, a, a; customer 2 touched c twice.
    counts = bounded_counts([(1, "a"), (1, "b"), (1, "c"), (1, "a"), (2, "c"), (2, "c"), (1, None)], bounds)
    assert counts == Counter({"a": 1, "b": 1, "c": 1})
    assert bounds.l1_sensitivity == 2


def test_removing_any_one_customer_moves_the_counts_by_at_most_the_sensitivity():
    bounds = Bounds(max_keys=3, max_per_key=2)
    rows = [(c, f"k{(c * 7 + i) % 11}") for c in range(30) for i in range(c % 9)]
    full = bounded_counts(rows, bounds)
    for gone in range(30):
        without = bounded_counts([r for r in rows if r[0] != gone], bounds)
        assert sum(abs(full[k] - without[k]) for k in full) <= bounds.l1_sensitivity
