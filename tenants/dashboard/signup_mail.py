"""The e-mail a sign-up sends: the confirmation link to a new address, a notice to one that has an account.

The page shown after a sign-up is the same in every case; only the address's owner learns which it was.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.mail import send_mail
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse

from tenants.accounts import Registration, confirmation_token, link_lifetime
from tenants.ratelimit import hit

# Notices to an address that has an account, per hour: sign-ups under someone else's address must not
# turn the service into a way to flood their inbox.
NOTICES_PER_ADDRESS_PER_HOUR = 3

_TEMPLATES = {
    Registration.NEW: ("Confirm your e-mail address", "registration/email/signup_confirm.txt"),
    Registration.PENDING: ("Your sign-up is waiting for its confirmation", "registration/email/signup_pending.txt"),
    Registration.EXISTING: ("You already have an account", "registration/email/signup_existing.txt"),
}


def send_signup_mail(request: HttpRequest, outcome: Registration, email: str, user, shop_name: str) -> bool:
    """Mail the address what its sign-up led to; False when a notice was held back by the hourly cap."""
    if outcome is not Registration.NEW:
        digest = hashlib.sha256(email.lower().encode()).hexdigest()[:32]
        allowed, _ = hit(f"signup-notice:{digest}", NOTICES_PER_ADDRESS_PER_HOUR, window=3600)
        if not allowed:
            return False
    subject, template = _TEMPLATES[outcome]
    context = {
        "email": email,
        "shop_name": shop_name,
        "login_url": request.build_absolute_uri(reverse("dashboard:login")),
        "link_hours": settings.RECSVC_SIGNUP_LINK_HOURS,
    }
    if outcome is Registration.NEW:
        token = confirmation_token(user, shop_name)
        context["confirm_url"] = request.build_absolute_uri(reverse("dashboard:signup_confirm", args=[token]))
    elif outcome is Registration.PENDING and user is not None:
        context["expires_at"] = user.date_joined + link_lifetime()
    send_mail(subject, render_to_string(template, context), None, [email])
    return True
