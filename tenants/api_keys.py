"""API keys: creation (shown once), hashed storage, lookup with a short cache, revocation."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable

from django.core.cache import cache
from django.utils import timezone

from tenants.models import ApiKey, Tenant

KEY_PREFIX = "rsk_"
_CACHE_SECONDS = 60


class InvalidScope(ValueError):
    pass


def _hash(raw_key: str) -> str:
    # Keys carry 190 bits of randomness, so a fast hash is enough (as GitHub and Stripe do).
    return hashlib.sha256(raw_key.encode()).hexdigest()


def _cache_key(prefix: str) -> str:
    return f"apikey:{prefix}"


def create_api_key(tenant: Tenant, *, name: str, scopes: Iterable[str], created_by=None) -> tuple[ApiKey, str]:
    """Create a key and return it with its plaintext, which is never stored or shown again."""
    scope_list = sorted(set(scopes))
    valid = set(ApiKey.Scope.values)
    if not scope_list or not set(scope_list) <= valid:
        raise InvalidScope(f"scopes must be a non-empty subset of {sorted(valid)}")
    prefix = KEY_PREFIX + secrets.token_hex(6)
    raw = f"{prefix}_{secrets.token_urlsafe(24)}"
    key = ApiKey.objects.create(
        tenant=tenant, name=name, prefix=prefix, secret_hash=_hash(raw), scopes=scope_list, created_by=created_by
    )
    return key, raw


def revoke_api_key(key: ApiKey) -> None:
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
    cache.delete(_cache_key(key.prefix))


def forget_cached_keys(tenant: Tenant) -> None:
    """Drop a tenant's cached keys, so that a change to the tenant (deactivation) binds on the next request."""
    cache.delete_many([_cache_key(prefix) for prefix in tenant.api_keys.values_list("prefix", flat=True)])


def authenticate_api_key(raw_key: str) -> ApiKey | None:
    """The active key matching `raw_key`, or None. Comparison is constant time."""
    if not raw_key.startswith(KEY_PREFIX) or len(raw_key) > 128:
        return None
    parts = raw_key.split("_", 2)  # rsk, public id, secret (the secret may itself contain "_")
    if len(parts) != 3 or not parts[1] or not parts[2]:
        return None
    prefix = f"{parts[0]}_{parts[1]}"
    key = cache.get(_cache_key(prefix))
    if key is None:
        key = ApiKey.objects.select_related("tenant").filter(prefix=prefix).first()
        if key is None:
            return None
        cache.set(_cache_key(prefix), key, _CACHE_SECONDS)
    if key.revoked_at is not None or not key.tenant.is_active:
        return None
    if not hmac.compare_digest(key.secret_hash, _hash(raw_key)):
        return None
    _touch(key)
    return key


def _touch(key: ApiKey) -> None:
    """Record use at most once per cache period: one UPDATE a minute per key, not one per request."""
    now = timezone.now()
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > _CACHE_SECONDS:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
        cache.set(_cache_key(key.prefix), key, _CACHE_SECONDS)
