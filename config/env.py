"""Typed readers for settings from the environment.

Each helper fails at start-up with the variable's name when a value is malformed, so a typo in a
deployment never turns into a silently different behaviour.
"""

from __future__ import annotations

import os
import re

_OPAQUE_ID = re.compile(r"[A-Za-z0-9_]{1,250}")
_IDENTIFIER = re.compile(r"[A-Za-z0-9_.:-]{1,100}")


class ImproperlyConfiguredEnv(ValueError):
    pass


def env_str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfiguredEnv(f"{name} must be a boolean (1/0, true/false, yes/no, on/off), got {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfiguredEnv(f"{name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfiguredEnv(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfiguredEnv(f"{name} must be <= {maximum}, got {value}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_url(name: str, *, schemes: tuple[str, ...]) -> str | None:
    raw = env_str(name)
    if raw is None:
        return None
    scheme = raw.split("://", 1)[0] if "://" in raw else ""
    if scheme not in schemes:
        raise ImproperlyConfiguredEnv(f"{name} must be a URL with scheme in {schemes}, got {raw!r}")
    return raw


def env_prefixed(name: str, prefixes: tuple[str, ...], *, secret: bool = False) -> str | None:
    """An opaque id with a known prefix (Stripe: `price_...`, `sk_live_...`, `whsec_...`), or None when unset.

    A value of the wrong kind (a product id where a price id belongs, a publishable key for a secret
    key, stray whitespace or quotes) stops the process at start-up instead of failing at the first sale.
    """
    raw = env_str(name)
    if raw is None:
        return None
    if not any(raw.startswith(prefix) and _OPAQUE_ID.fullmatch(raw[len(prefix) :]) for prefix in prefixes):
        shown = f"{raw[:3]}..." if secret else repr(raw)  # never echo a secret into logs
        raise ImproperlyConfiguredEnv(f"{name} must be one of {prefixes} followed by letters/digits, got {shown}")
    return raw


def env_identifier(name: str, default: str) -> str:
    """A short machine name (letters, digits, `_-.:`), e.g. a Stripe meter's event name."""
    raw = env_str(name, default)
    if not _IDENTIFIER.fullmatch(raw):
        raise ImproperlyConfiguredEnv(f"{name} must be 1-100 of letters, digits and _-.: , got {raw!r}")
    return raw


def derive_fernet_key(secret: str, *, purpose: str) -> str:
    """A Fernet key derived from another secret (HKDF-SHA256), separated from other uses by `purpose`."""
    import base64

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(secret.encode())
    return base64.urlsafe_b64encode(raw).decode()


def env_fernet_keys(name: str, *, default: str | None, why_required: str = "") -> list[str]:
    """Fernet keys from a comma-separated variable: the first encrypts, every one decrypts (key rotation).

    Unset: `[default]`, or a start-up error (ending with `why_required`) when there is no default. A
    malformed key fails at start-up, never at the first decryption.
    """
    import base64
    import binascii

    keys = env_list(name, [default] if default is not None else [])
    if not keys:
        raise ImproperlyConfiguredEnv(
            f"{name} must be set{why_required}; make one with cryptography.fernet.Fernet.generate_key()"
        )
    for key in keys:
        try:
            ok = len(base64.urlsafe_b64decode(key.encode())) == 32
        except (binascii.Error, ValueError):
            ok = False
        if not ok:
            raise ImproperlyConfiguredEnv(
                f"{name} must be Fernet keys (url-safe base64 of 32 bytes, comma-separated); "
                "make one with cryptography.fernet.Fernet.generate_key()"
            )
    return keys
