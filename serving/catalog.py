"""The candidate attribute table: the current rows of a request's candidates as NumPy columns.

The funnel reads its candidates' rows in one query (the product table as it is now, not the trained
catalog, so a stock change applies to the next uncached request) and the compiled rules evaluate masks
over these columns. Rows come back aligned with the candidate order the caller passed; a pk without a
row (a product deleted from the database) has `found` False and is treated like a deleted product.

Columns: strings are NumPy StringDType arrays (vectorised comparison and substring search), numbers
float64 with NaN for "not set" (price unknown, stock not tracked), list-valued fields (category_path,
tags) are flattened into (values, owner row) pairs so membership is one `np.isin` plus a scatter. JSON
attributes are read only for the keys the tenant's rules name, extracted by PostgreSQL.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import msgspec
import numpy as np
from django.db import connection
from django.db.models import FloatField
from django.db.models.fields.json import KeyTransform
from django.db.models.functions import Cast

from core.postgres import server_bound_cursor
from recs.models import Product
from serving import candidate_rows

STR = np.dtypes.StringDType()
COLUMNS = ("id", "external_id", "title", "available", "deleted", "stock_f", "price_f", "brand", "category_path", "tags")


def _flatten(lists: list[list[Any]]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
    values = np.array([str(v) for v in itertools.chain.from_iterable(lists)], dtype=STR)
    owner = np.repeat(np.arange(len(lists), dtype=np.int64), lengths)
    return values, owner


@dataclass
class AttributeColumn:
    """One JSON attribute over the candidates, split by JSON type (a value is in at most one view)."""

    number: np.ndarray  # float64, NaN where the value is not a number
    string: np.ndarray  # StringDType, "" where the value is not a string
    is_string: np.ndarray  # bool
    boolean: np.ndarray  # bool value
    is_bool: np.ndarray  # bool

    @classmethod
    def from_values(cls, values: list[Any]) -> AttributeColumn:
        n = len(values)
        is_bool = np.fromiter((isinstance(v, bool) for v in values), dtype=bool, count=n)
        is_num = np.fromiter((isinstance(v, int | float) and not isinstance(v, bool) for v in values), bool, count=n)
        is_str = np.fromiter((isinstance(v, str) for v in values), dtype=bool, count=n)
        number = np.full(n, np.nan)
        if is_num.any():
            number[is_num] = np.array([v for v, ok in zip(values, is_num, strict=True) if ok], dtype=np.float64)
        string = np.array([v if ok else "" for v, ok in zip(values, is_str, strict=True)], dtype=STR)
        boolean = np.array([bool(v) if ok else False for v, ok in zip(values, is_bool, strict=True)], dtype=bool)
        return cls(number, string, is_str, boolean, is_bool)


@dataclass
class CandidateTable:
    pks: np.ndarray  # int64, the candidates in the caller's order
    found: np.ndarray  # bool: a product row exists
    external_id: np.ndarray  # StringDType
    title: np.ndarray  # StringDType
    available: np.ndarray  # bool
    deleted: np.ndarray  # bool (True where not found)
    stock: np.ndarray  # float64, NaN: stock not tracked
    price: np.ndarray  # float64, NaN: no price
    brand: np.ndarray  # StringDType
    category_paths: list[Sequence[str]]  # lists, or tuples where the row was kept (serving/candidate_rows.py)
    tag_lists: list[Sequence[str]]
    attributes: dict[str, AttributeColumn] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.pks)

    @cached_property
    def categories(self) -> tuple[np.ndarray, np.ndarray]:
        """(every category_path element, the row it belongs to)."""
        return _flatten(self.category_paths)

    @cached_property
    def tags(self) -> tuple[np.ndarray, np.ndarray]:
        return _flatten(self.tag_lists)

    @cached_property
    def leaf_category(self) -> np.ndarray:
        """The most specific category (last element of category_path), "" without one: the diversity
        cap's unit, so that "Shoes > Running" and "Shoes > Hiking" count separately."""
        return np.array([str(p[-1]) if p else "" for p in self.category_paths], dtype=STR)

    @cached_property
    def in_stock(self) -> np.ndarray:
        """Sellable now: available, not deleted, and stock untracked or positive."""
        return self.available & ~self.deleted & (np.isnan(self.stock) | (self.stock > 0))

    def has_any(self, values: tuple[np.ndarray, np.ndarray], wanted: list[str]) -> np.ndarray:
        """Rows whose list (categories or tags) holds any of `wanted`."""
        flat, owner = values
        out = np.zeros(len(self), dtype=bool)
        out[owner[np.isin(flat, np.array(wanted, dtype=STR))]] = True
        return out


def empty_table() -> CandidateTable:
    return table_from_rows(np.zeros(0, dtype=np.int64), [], ())


def load_candidates(tenant_id: int, pks: np.ndarray, attribute_keys: tuple[str, ...] = ()) -> CandidateTable:
    """The current rows of these products, aligned with `pks` (one query, for the rows the process does
    not keep: serving/candidate_rows.py)."""
    pks = np.asarray(pks, dtype=np.int64)
    if len(pks) == 0:
        return empty_table()
    # One plain statement rather than the ORM: building the query and converting a few hundred rows through
    # the model's field converters was a third of an uncached answer's CPU. Casts in the database: floats
    # (None for NULL) become NaN-carrying arrays without Decimal work.
    read = _rows_through_sql if connection.vendor == "postgresql" else _rows_through_the_orm  # the demo's SQLite
    rows = candidate_rows.read_through(tenant_id, pks, attribute_keys,
                                       lambda wanted: read(tenant_id, wanted, attribute_keys))
    return table_from_rows(pks, rows, attribute_keys)


def _rows_through_sql(tenant_id: int, pks: np.ndarray, attribute_keys: tuple[str, ...]) -> list[list]:
    attributes = "".join(", attributes -> %s" for _ in attribute_keys)
    # The rows come back as one JSON document, decoded by one C call into lists (JSON columns included),
    # rather than as psycopg rows whose JSON text each needed its own decode; the pks go as an array
    # literal, which psycopg would otherwise build element by element in Python. Together that was about
    # a fifth of an uncached MovieLens answer's CPU (cProfile).
    sql = (f"SELECT json_agg(json_build_array({_SELECTED}{attributes}))::text FROM {Product._meta.db_table}"
           " WHERE tenant_id = %s AND id = ANY(%s::bigint[])")
    with server_bound_cursor() as cursor:
        cursor.execute(sql, [*attribute_keys, tenant_id, "{" + ",".join(map(str, pks.tolist())) + "}"])
        document = cursor.fetchone()[0]
    return msgspec.json.decode(document) if document else []


def _rows_through_the_orm(tenant_id: int, pks: np.ndarray, attribute_keys: tuple[str, ...]) -> list[tuple]:
    qs = Product.objects.for_tenant(tenant_id).filter(pk__in=pks.tolist()).annotate(
        stock_f=Cast("stock", FloatField()), price_f=Cast("price", FloatField()),
        **{f"attr_{i}": KeyTransform(key, "attributes") for i, key in enumerate(attribute_keys)},
    )
    return list(qs.values_list(*COLUMNS, *(f"attr_{i}" for i in range(len(attribute_keys)))))


_SELECTED = "id, external_id, title, available, deleted, stock::float8, price::float8, brand, category_path, tags"


def table_from_rows(pks: np.ndarray, rows: Sequence[Sequence], attribute_keys: tuple[str, ...] = ()) -> CandidateTable:
    """A table from rows in COLUMNS order (then one value per attribute key), aligned with `pks`."""
    by_pk = {row[0]: row for row in rows}
    aligned = [by_pk.get(pk) for pk in pks.tolist()]
    found = np.fromiter((row is not None for row in aligned), dtype=bool, count=len(aligned))
    if not found.all():  # a pk without a row reads as a deleted product without values
        missing = (0, "", "", False, True, None, None, "", [], [], *(None for _ in attribute_keys))
        aligned = [row if row is not None else missing for row in aligned]
    # Rows aligned first, then each column made at once: gathering every column through the rows' order
    # cost twice as much CPU.
    cols = list(zip(*aligned, strict=True)) if aligned else [()] * (len(COLUMNS) + len(attribute_keys))

    def lists(i: int) -> list[Sequence]:
        return [value if type(value) in (list, tuple) else [] for value in cols[i]]

    return CandidateTable(
        pks=pks,
        found=found,
        external_id=np.array(cols[1], dtype=STR),
        title=np.array(cols[2], dtype=STR),
        available=np.array(cols[3], dtype=bool),
        deleted=np.array(cols[4], dtype=bool),
        stock=np.array(cols[5], dtype=np.float64),  # None (not tracked) becomes NaN
        price=np.array(cols[6], dtype=np.float64),
        brand=np.array(cols[7], dtype=STR),
        category_paths=lists(8),
        tag_lists=lists(9),
        attributes={
            key: AttributeColumn.from_values(list(cols[len(COLUMNS) + i])) for i, key in enumerate(attribute_keys)
        },
    )
