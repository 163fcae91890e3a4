"""API keys: creation (shown once), hashed storage, lookup with a short cache, revocation."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Iterable
from typing import NamedTuple

from django.core.cache import cache
from django.utils import timezone

from tenants import key_cache, storefront
from tenants.models import ApiKey, Tenant

KEY_PREFIX = "rsk_"
# A publishable key looks different, so that a shop (and a secret scanner) can tell the one meant for its
# pages from the secret ones.
PUBLISHABLE_PREFIX = "rpk_"
_PREFIXES = (KEY_PREFIX, PUBLISHABLE_PREFIX)
_CACHE_SECONDS = key_cache.CACHE_SECONDS


class InvalidScope(ValueError):
    pass


def _hash(raw_key: str) -> str:
    # Keys carry 190 bits of randomness, so a fast hash is enough (as GitHub and Stripe do).
    return hashlib.sha256(raw_key.encode()).hexdigest()


def _cache_key(prefix: str) -> str:
    return key_cache.cache_key(prefix)


def create_api_key(
    tenant: Tenant, *, name: str, scopes: Iterable[str], created_by=None, allowed_origins: Iterable[str] = ()
) -> tuple[ApiKey, str]:
    """Create a key and return it with its plaintext, which is never stored or shown again.

    A publishable key has that scope alone and at least one origin (ValueError otherwise)."""
    scope_list = sorted(set(scopes))
    valid = set(ApiKey.Scope.values)
    if not scope_list or not set(scope_list) <= valid:
        raise InvalidScope(f"scopes must be a non-empty subset of {sorted(valid)}")
    origins = storefront.clean_origins(allowed_origins)
    publishable = ApiKey.Scope.PUBLISHABLE in scope_list
    if publishable and len(scope_list) > 1:
        raise InvalidScope("A publishable key has no other scope: it is seen by everyone who opens the shop.")
    if publishable and not origins:
        raise ValueError("A publishable key needs at least one origin (the shop's site, e.g. https://shop.example).")
    if origins and not publishable:
        raise ValueError("Only a publishable key has origins.")
    prefix = (PUBLISHABLE_PREFIX if publishable else KEY_PREFIX) + secrets.token_hex(6)
    raw = f"{prefix}_{secrets.token_urlsafe(24)}"
    key = ApiKey.objects.create(
        tenant=tenant, name=name, prefix=prefix, secret_hash=_hash(raw), scopes=scope_list,
        allowed_origins=origins, created_by=created_by,
    )
    if publishable:
        storefront.forget_known_origins()
    return key, raw


def revoke_api_key(key: ApiKey) -> None:
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
    cache.delete(_cache_key(key.prefix))
    if key.is_publishable:
        storefront.forget_known_origins()


def forget_cached_keys(tenant: Tenant) -> None:
    """Drop a tenant's cached keys, so that a change to the tenant (deactivation) binds on the next request."""
    cache.delete_many([_cache_key(prefix) for prefix in tenant.api_keys.values_list("prefix", flat=True)])


def parse_prefix(raw_key: str) -> str | None:
    """The public prefix of a well-formed key (`rsk_<id>` or `rpk_<id>`), else None."""
    if not raw_key.startswith(_PREFIXES) or len(raw_key) > 128:
        return None
    parts = raw_key.split("_", 2)  # rsk, public id, secret (the secret may itself contain "_")
    if len(parts) != 3 or not parts[1] or not parts[2]:
        return None
    return f"{parts[0]}_{parts[1]}"


class Identity(NamedTuple):
    key_id: int
    tenant_id: int
    secret_hash: str


# What never changes about a key (its id, its tenant, the hash of its secret) is kept per process once
# read: a wrong secret for a known prefix is refused without I/O, and the tenant and key ids the admission
# round trip needs are known before it. Everything that can change (revocation, the tenant's plan and
# activity) is still read from the shared cache entry on every request (tenants.admission), so revoking
# a key binds on the next request in every process.
_identities: dict[str, Identity] = {}
_MAX_IDENTITIES = 10_000

class RecentMisses:
    """Prefixes the database did not know, each remembered for `seconds` (bounded: cleared when full, a
    cleared entry costs one query to learn again)."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic, max_size: int = 10_000):
        self.seconds, self.clock, self.max_size = seconds, clock, max_size
        self._until: dict[str, float] = {}

    def __contains__(self, prefix: str) -> bool:
        until = self._until.get(prefix)
        if until is None:
            return False
        if until > self.clock():
            return True
        del self._until[prefix]
        return False

    def add(self, prefix: str) -> None:
        if len(self._until) >= self.max_size:
            self._until.clear()
        self._until[prefix] = self.clock() + self.seconds


# A client repeating an unknown key is refused without a query for this long. New keys get fresh random
# prefixes, so a prefix remembered here can only be one somebody guessed.
UNKNOWN_SECONDS = 30.0
unknown_prefixes = RecentMisses(UNKNOWN_SECONDS)


def remember_identity(key: ApiKey) -> Identity:
    if len(_identities) >= _MAX_IDENTITIES:
        _identities.clear()  # bounded; a cleared entry costs one query to read again
    identity = _identities[key.prefix] = Identity(key.pk, key.tenant_id, key.secret_hash)
    return identity


def identity_of(prefix: str) -> Identity | None:
    """The key's immutable identity, from this process or the database (None: no such key)."""
    identity = _identities.get(prefix)
    if identity is None:
        if prefix in unknown_prefixes:
            return None
        key = ApiKey.objects.filter(prefix=prefix).only("pk", "tenant", "secret_hash", "prefix").first()
        if key is None:
            unknown_prefixes.add(prefix)
            return None
        identity = remember_identity(key)
    return identity


def secret_matches(identity: Identity, raw_key: str) -> bool:
    """Constant-time comparison of the key's stored hash with the hash of `raw_key`."""
    return hmac.compare_digest(identity.secret_hash, _hash(raw_key))


def cache_key(prefix: str) -> str:
    """The shared cache entry of a key (its row and its tenant's), deleted on revocation."""
    return _cache_key(prefix)


def load_key(prefix: str) -> ApiKey | None:
    """The key with its tenant from the database, put in the shared cache."""
    if prefix in unknown_prefixes:
        return None
    key = ApiKey.objects.select_related("tenant").filter(prefix=prefix).first()
    if key is None:
        unknown_prefixes.add(prefix)
        return None
    key_cache.store(key)
    remember_identity(key)
    return key


def usable(key: ApiKey | None, raw_key: str) -> bool:
    """Not revoked, of an active tenant, and `raw_key` is its secret (constant-time comparison)."""
    if key is None or key.revoked_at is not None or not key.tenant.is_active:
        return False
    return hmac.compare_digest(key.secret_hash, _hash(raw_key))


def authenticate_api_key(raw_key: str) -> ApiKey | None:
    """The active key matching `raw_key`, or None. Comparison is constant time.

    (The API authenticates through tenants.admission, which reads the same cache entry in the round trip
    that also counts the rate limit; this is the plain path for everything else.)"""
    prefix = parse_prefix(raw_key)
    if prefix is None:
        return None
    key = key_cache.read(prefix)
    if key is None:
        key = load_key(prefix)
    if not usable(key, raw_key):
        return None
    touch(key)
    return key


def touch(key: ApiKey) -> None:
    """Record use at most once per cache period: one UPDATE a minute per key, not one per request."""
    now = timezone.now()
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > _CACHE_SECONDS:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
        key_cache.store(key)
