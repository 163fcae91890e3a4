"""Encryption at rest for secrets the service must be able to read back (webhook secrets).

Fernet (AES-128-CBC + HMAC-SHA256) with the keys in settings.RECSVC_FIELD_ENCRYPTION_KEYS: the first
encrypts, all decrypt, so a key can be rotated by prepending a new one and re-encrypting at leisure.
"""

from __future__ import annotations

import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class SecretUnreadable(Exception):
    """The stored token was made with a key that is no longer configured (or was tampered with)."""


@functools.lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key.encode()) for key in keys])


def _current() -> MultiFernet:
    return _fernet(tuple(settings.RECSVC_FIELD_ENCRYPTION_KEYS))


def encrypt_secret(plaintext: str) -> str:
    return _current().encrypt(plaintext.encode()).decode()


def decrypt_secret(token: str) -> str:
    try:
        return _current().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable("the stored secret cannot be decrypted with the configured keys") from None
