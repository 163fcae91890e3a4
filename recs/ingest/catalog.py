"""Upserts of customers and products by the shop's external id, keeping attribute history.

Every change to a tracked attribute closes the current version row (valid_to = effective time) and
opens a new one, so training can read each attribute as it was at any moment. An update carrying an
`updated_at` older than the stored one arrived out of order and is ignored (`stale`).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from recs.attribution import erase
from recs.ingest.errors import IngestResult, RowError
from recs.models import Customer, CustomerVersion, Product, ProductVersion
from recs.models.catalog import CUSTOMER_TRACKED_FIELDS, PRODUCT_TRACKED_FIELDS
from serving import catalog_changes


@dataclass
class UpsertResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.__dict__.items()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    return value


def _assign(obj, values: dict[str, Any], fields: tuple[str, ...]) -> None:
    for name, value in values.items():
        if name in fields:
            setattr(obj, name, value)


def _snapshot(obj, fields: tuple[str, ...]) -> dict[str, Any]:
    return {name: _jsonable(getattr(obj, name)) for name in fields}


def _upsert(model, version_model, fk_name: str, fields: tuple[str, ...], tenant_id: int,
            items: list[dict[str, Any]], *, partial: bool) -> tuple[UpsertResult, list]:
    """Shared upsert for customers and products. `items` are validated dicts with `external_id`. Returns
    the result and the rows whose tracked fields changed."""
    now = timezone.now()
    result = UpsertResult()
    by_ext = {item["external_id"]: item for item in items}  # last one wins inside a batch
    with transaction.atomic():
        existing = {
            obj.external_id: obj
            for obj in model.objects.for_tenant(tenant_id).select_for_update().filter(external_id__in=list(by_ext))
        }
        to_create, to_update, changed, effective = [], [], [], {}
        for ext, item in by_ext.items():
            updated_at: dt.datetime | None = item.get("updated_at")
            obj = existing.get(ext)
            if obj is None:
                obj = model(tenant_id=tenant_id, external_id=ext, source_updated_at=updated_at)
                _assign(obj, item, fields)
                to_create.append(obj)
                result.created.append(ext)
                effective[ext] = updated_at or now
                continue
            if updated_at and obj.source_updated_at and updated_at < obj.source_updated_at:
                result.stale.append(ext)
                continue
            before = _snapshot(obj, fields)
            was_placeholder = getattr(obj, "is_placeholder", False)
            if not partial:
                # A full replace resets what the payload leaves out.
                _assign(obj, _snapshot(model(), fields), fields)
            _assign(obj, item, fields)
            if updated_at:
                obj.source_updated_at = updated_at
            if was_placeholder:
                obj.is_placeholder = False
            to_update.append(obj)
            if _snapshot(obj, fields) == before and not was_placeholder:
                result.unchanged.append(ext)
                continue
            changed.append(obj)
            result.updated.append(ext)
            effective[ext] = updated_at or now
        model.objects.bulk_create(to_create, batch_size=500)
        if to_update:
            for obj in to_update:
                obj.updated_at = now
            extra = ["is_placeholder"] if model is Customer else []
            model.objects.for_tenant(tenant_id).bulk_update(
                to_update, [*fields, *extra, "source_updated_at", "updated_at"], batch_size=500
            )
        # A version never starts before the one it closes: a shop time older than history recorded on
        # server time (sent earlier without updated_at) takes effect when received instead.
        if changed:
            open_from = dict(
                version_model.objects.for_tenant(tenant_id)
                .filter(**{f"{fk_name}__in": [o.pk for o in changed]}, valid_to__isnull=True)
                .values_list(f"{fk_name}_id", "valid_from")
            )
            for obj in changed:
                start = open_from.get(obj.pk)
                if start is not None and effective[obj.external_id] < start:
                    effective[obj.external_id] = max(now, start)
        # Close each superseded version when its successor starts.
        closing: dict[dt.datetime, list[int]] = defaultdict(list)
        for obj in changed:
            closing[effective[obj.external_id]].append(obj.pk)
        for when, pks in closing.items():
            version_model.objects.for_tenant(tenant_id).filter(
                **{f"{fk_name}__in": pks}, valid_to__isnull=True
            ).update(valid_to=when)
        version_model.objects.bulk_create(
            [
                version_model(tenant_id=tenant_id, valid_from=effective[o.external_id], snapshot=_snapshot(o, fields),
                              **{fk_name: o})
                for o in (*to_create, *changed)
            ],
            batch_size=500,
        )
    return result, changed


def upsert_products(tenant_id: int, items: list[dict[str, Any]], *, partial: bool = False) -> UpsertResult:
    result, changed = _upsert(Product, ProductVersion, "product", PRODUCT_TRACKED_FIELDS, tenant_id, items,
                              partial=partial)
    if changed:  # serving processes drop what they kept of these rows (new rows were never kept)
        pks = [obj.pk for obj in changed]
        transaction.on_commit(lambda: catalog_changes.publish_changes(tenant_id, pks))
    return result


def upsert_customers(tenant_id: int, items: list[dict[str, Any]], *, partial: bool = False) -> UpsertResult:
    result, _ = _upsert(
        Customer, CustomerVersion, "customer", CUSTOMER_TRACKED_FIELDS, tenant_id, items, partial=partial
    )
    return result


def delete_product(product: Product) -> None:
    """Soft delete: the row and its history stay for training; the API and serving stop showing it."""
    upsert_products(product.tenant_id, [{"external_id": product.external_id, "deleted": True}], partial=True)


def delete_customer(customer: Customer) -> None:
    """Erase a customer with their events, history and the answers served to them (the GDPR right to
    erasure)."""
    sessions = erase.sessions_of(customer.tenant_id, [customer.pk])
    erase.forget_customers(customer.tenant_id, [customer.external_id], sessions)
    customer.delete()


def _from_csv(row: dict[str, str]) -> dict:
    """CSV cells are strings: lists are written 'A > B > C' (category path) or 'a|b' (tags), attributes as JSON."""
    import json

    item: dict = {k: v for k, v in row.items() if v not in ("", None)}
    if isinstance(item.get("category_path"), str):
        item["category_path"] = [part.strip() for part in item["category_path"].split(">") if part.strip()]
    if isinstance(item.get("tags"), str):
        item["tags"] = [tag for tag in item["tags"].split("|") if tag]
    if isinstance(item.get("attributes"), str):
        try:
            item["attributes"] = json.loads(item["attributes"])
        except ValueError:
            item["attributes"] = None  # reported by the serializer as invalid
    return item


def validate_catalog_items(kind: str, rows: list, *, from_csv: bool = False) -> tuple[list[dict], list[RowError]]:
    """Validate catalog rows (parsed objects, NDJSON lines or CSV dicts); a repeated id is a row error."""
    import msgspec

    from recs.ingest.catalog_schema import CustomerSerializer, ProductSerializer, to_domain

    serializer_class = ProductSerializer if kind == "products" else CustomerSerializer
    valid: list[dict] = []
    errors: list[RowError] = []
    seen: set[str] = set()
    for index, raw in enumerate(rows):
        data = raw
        if isinstance(raw, (bytes, str)):
            try:
                data = msgspec.json.decode(raw)
            except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deep
                errors.append(RowError(index, {"non_field_errors": ["Malformed JSON line."]}))
                continue
        elif from_csv:
            data = _from_csv(raw)
        if not isinstance(data, dict):
            errors.append(RowError(index, {"non_field_errors": ["Expected a JSON object."]}))
            continue
        serializer = serializer_class(data=data)
        if not serializer.is_valid():
            errors.append(RowError(index, {k: [str(m) for m in v] for k, v in serializer.errors.items()}))
            continue
        item = to_domain(serializer.validated_data)
        if item["external_id"] in seen:
            errors.append(RowError(index, {"id": ["Duplicate id inside this batch."]}))
            continue
        seen.add(item["external_id"])
        valid.append(item)
    return valid, errors


def import_catalog_rows(tenant_id: int, kind: str, rows: list, *, from_csv: bool = False) -> IngestResult:
    """Validate and upsert a chunk of catalog rows: valid rows are stored, invalid ones reported."""
    valid, errors = validate_catalog_items(kind, rows, from_csv=from_csv)
    result = IngestResult(received=len(rows), row_errors=errors)
    if valid:
        upsert = upsert_products if kind == "products" else upsert_customers
        outcome = upsert(tenant_id, valid)
        result.stored = len(outcome.created) + len(outcome.updated)
        result.duplicates = len(outcome.unchanged) + len(outcome.stale)
    return result
