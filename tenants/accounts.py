"""Dashboard accounts opened by sign-up: pending until the owner of the e-mail address confirms it.

A sign-up creates an inactive account (it cannot log in) and nothing else; following the link mailed to
the address activates it and creates the shop named at sign-up. Whether an address already has an
account is never told to the one signing up: the address's owner gets a message instead.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.core import signing
from django.db import IntegrityError, transaction
from django.utils import timezone

_SALT = "tenants.accounts.signup-confirmation"


class _ConfirmationTokens(PasswordResetTokenGenerator):
    """Single use: the hash covers `is_active`, so activating the account voids every link made before."""

    key_salt = "tenants.accounts._ConfirmationTokens"

    def _make_hash_value(self, user, timestamp: int) -> str:
        return f"{user.pk}{user.password}{user.is_active}{timestamp}{user.get_username()}"


_tokens = _ConfirmationTokens()


class Registration(enum.Enum):
    NEW = "new"  # an inactive account was created: mail it the confirmation link
    PENDING = "pending"  # an earlier sign-up of this address awaits its confirmation
    EXISTING = "existing"  # the address has an account


@dataclass(frozen=True)
class Confirmation:
    user: object
    shop_name: str


class InvalidConfirmation(ValueError):
    pass


def link_lifetime() -> dt.timedelta:
    return dt.timedelta(hours=settings.RECSVC_SIGNUP_LINK_HOURS)


def _is_unconfirmed(user) -> bool:
    return not user.is_active and user.last_login is None and not user.memberships.exists()


def register(email: str, password: str) -> tuple[Registration, object | None]:
    """Open a pending account for `email`, unless the address has one.

    An unconfirmed sign-up older than the link's lifetime is dropped, so an address someone else signed
    up with is free again once that link has expired. The two answers that create nothing still hash the
    password, so the time taken does not tell them from a new account either.
    """
    User = get_user_model()
    with transaction.atomic():
        existing = User.objects.filter(username__iexact=email).select_for_update().first()
        expired = timezone.now() - link_lifetime()
        if existing is not None and _is_unconfirmed(existing) and existing.date_joined < expired:
            existing.delete()
            existing = None
        if existing is None:
            try:
                with transaction.atomic():
                    user = User.objects.create_user(username=email, email=email, password=password, is_active=False)
                return Registration.NEW, user
            except IntegrityError:  # the same address signed up concurrently
                return Registration.PENDING, None
    make_password(password)
    return (Registration.PENDING if _is_unconfirmed(existing) else Registration.EXISTING), existing


def confirmation_token(user, shop_name: str) -> str:
    """The token of the link mailed at sign-up: signed (the shop name cannot be changed), expiring, once."""
    return signing.dumps({"user": user.pk, "shop": shop_name, "check": _tokens.make_token(user)}, salt=_SALT)


def read_confirmation(token: str) -> Confirmation:
    """The pending account and shop name of a valid, unused, unexpired link, or InvalidConfirmation."""
    try:
        data = signing.loads(token, salt=_SALT, max_age=link_lifetime())
    except signing.BadSignature:  # also SignatureExpired
        raise InvalidConfirmation("This link is invalid or has expired.") from None
    user = get_user_model().objects.filter(pk=data.get("user")).first()
    if user is None or user.is_active or not _tokens.check_token(user, data.get("check", "")):
        raise InvalidConfirmation("This link is invalid, has expired or was already used.")
    return Confirmation(user=user, shop_name=data.get("shop", ""))


def confirm_account(token: str) -> Confirmation:
    """Activate the pending account of a valid link; call it in a transaction (a second use of the same
    link waits for the first and is then refused)."""
    confirmation = read_confirmation(token)
    user = get_user_model().objects.select_for_update().get(pk=confirmation.user.pk)
    if user.is_active:
        raise InvalidConfirmation("This link was already used.")
    user.is_active = True
    user.save(update_fields=["is_active"])
    return Confirmation(user=user, shop_name=confirmation.shop_name)
