"""Which categories and tags get an id of their own (training.datasets.item_features)."""

from training.datasets import item_features, min_category_items


def _product(pk: int, path: list[str], tags: list[str] | None = None) -> tuple:
    return (pk, f"Film {pk}", path, None, None, tags or [])

def test_a_category_few_products_carry_gets_no_id():
    # 300 films: every one is a Drama, 10 of them Drama > Comedy, 2 of them Drama > Comedy > Romance.
    products = [_product(pk, ["Drama"], ["classic"] if pk < 2 else None) for pk in range(288)]
    products += [_product(288 + pk, ["Drama", "Comedy"]) for pk in range(10)]
    products += [_product(298 + pk, ["Drama", "Comedy", "Romance"]) for pk in range(2)]
    assert min_category_items(len(products)) == 3

    items = item_features(products)

    ids = items.category.values.tolist()
    assert items.n_categories == 3  # "Drama" and "Drama > Comedy", and 0
    comedy = set(items.category.take([298]).values.tolist())
    assert len(comedy) == 2 and comedy == set(items.category.take([288]).values.tolist())
    assert ids.count(min(ids)) == 300  # every film keeps the shared top of its path
    assert items.category.take([0]).values.tolist() == items.category.take([5]).values.tolist()  # no "#classic"

def test_a_products_attribute_versions_count_once_and_history_counts():
    # Product 1 was a Toy and is now Garden; product 2 is a Toy: "Toys" is carried by two products.
    rows = [_product(1, ["Garden"]), _product(2, ["Toys"]), _product(1, ["Toys"]), _product(1, ["Toys"])]
    items = item_features(rows)
    assert items.category.lengths.tolist() == [0, 1, 1, 1]  # "Garden" is the first product's alone
    assert len(set(items.category.values.tolist())) == 1

def test_small_catalogs_keep_any_category_two_products_share():
    assert [min_category_items(n) for n in (1, 2, 150, 500, 999, 1_000, 50_000)] == [2, 2, 2, 5, 9, 10, 10]
