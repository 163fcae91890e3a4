"""Attacks on the dashboard's login and sign-up, sent to the real views: password guessing (per account,
per address, through the proxy), account discovery through sign-up, sign-up farming, and accounts used
before their e-mail address is confirmed."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.core import mail
from django.test import Client
from django.utils import timezone

from tenants.models import Membership, Tenant
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery"  # the factory's
NEW_PASSWORD = "wool-and-pine-1942"
LINK_RE = re.compile(r"http://testserver(/signup/confirm/\S+)")


class CountingHasher(PBKDF2PasswordHasher):
    """The real PBKDF2 hasher, cheapened, counting the hashes it computes."""

    iterations = 1000
    computed = 0

    def encode(self, password, salt, iterations=None):
        CountingHasher.computed += 1
        return super().encode(password, salt, iterations)


@pytest.fixture(autouse=True)
def _counting_hasher(settings):
    settings.PASSWORD_HASHERS = ["tests.tenants.test_dashboard_auth.CountingHasher"]
    settings.AXES_FAILURE_LIMIT = 10
    CountingHasher.computed = 0


def login(client: Client, username: str, password: str, ip: str = "198.51.100.1", **extra):
    return client.post("/login", {"username": username, "password": password}, REMOTE_ADDR=ip, **extra)


def logged_in(client: Client) -> bool:
    return client.get("/shops/new").status_code == 200


def sign_up(client: Client, email: str, shop: str = "Nordic Knits", password: str = NEW_PASSWORD, ip="198.51.100.7"):
    return client.post("/signup", {"shop_name": shop, "email": email, "password": password}, REMOTE_ADDR=ip)


# --- Login: guessing -------------------------------------------------------------------------------------


def test_guessing_an_accounts_password_locks_it_even_for_the_right_password():
    user = UserFactory()
    for attempt in range(20):  # from as many addresses: only the account's own count stops it
        response = login(Client(), user.username, f"guess-{attempt}", ip=f"203.0.113.{attempt + 1}")
        assert response.status_code in (200, 429)
    assert response.status_code == 429
    client = Client()
    locked = login(client, user.username, PASSWORD, ip="192.0.2.99")
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.content.decode() and int(locked["Retry-After"]) > 0
    assert not logged_in(client)


def test_a_locked_out_attempt_computes_no_password_hash():
    user = UserFactory()
    for attempt in range(10):
        login(Client(), user.username, f"guess-{attempt}")
    before = CountingHasher.computed
    assert login(Client(), user.username, PASSWORD, ip="192.0.2.50").status_code == 429
    assert CountingHasher.computed == before  # refused before PBKDF2 ran
    # An attempt that is not locked out does run the hasher: the counter counts.
    login(Client(), UserFactory().username, "wrong", ip="192.0.2.51")
    assert CountingHasher.computed > before


def test_spraying_many_accounts_from_one_address_locks_that_address():
    victim = UserFactory()
    for n in range(10):
        login(Client(), f"nobody{n}@example.com", "Winter2026!", ip="203.0.113.66")
    assert login(Client(), victim.username, PASSWORD, ip="203.0.113.66").status_code == 429
    client = Client()  # the victim from their own address is not affected
    assert login(client, victim.username, PASSWORD, ip="192.0.2.10").status_code == 302
    assert logged_in(client)


def test_behind_the_proxy_a_forged_forwarded_for_does_not_escape_the_lock(settings):
    settings.RECSVC_TRUSTED_PROXY_COUNT = 1  # deploy/nginx appends the address it saw
    victim = UserFactory()
    for n in range(10):  # the attacker invents a new address in front of nginx's entry each time
        forged = f"10.9.{n}.1, 203.0.113.77"
        login(Client(), f"nobody{n}@example.com", "guess", ip="127.0.0.1", HTTP_X_FORWARDED_FOR=forged)
    refused = login(Client(), victim.username, PASSWORD, ip="127.0.0.1", HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.77")
    assert refused.status_code == 429
    client = Client()  # other clients share nginx's REMOTE_ADDR but not the lock
    ok = login(client, victim.username, PASSWORD, ip="127.0.0.1", HTTP_X_FORWARDED_FOR="192.0.2.33")
    assert ok.status_code == 302 and logged_in(client)


def test_a_successful_login_below_the_limit_is_not_hindered():
    user = UserFactory()
    for attempt in range(3):
        assert login(Client(), user.username, f"typo-{attempt}").status_code == 200
    client = Client()
    assert login(client, user.username, PASSWORD).status_code == 302 and logged_in(client)


# --- Sign-up: confirmation --------------------------------------------------------------------------------


def test_an_account_cannot_log_in_until_its_address_is_confirmed():
    response = sign_up(Client(), "anna@knits.example")
    assert response.status_code == 200 and "Check your inbox" in response.content.decode()
    user = get_user_model().objects.get(username="anna@knits.example")
    assert not user.is_active and not Tenant.objects.filter(name="Nordic Knits").exists()

    client = Client()
    refused = login(client, "anna@knits.example", NEW_PASSWORD)
    assert refused.status_code == 200 and "match. Please try again" in refused.content.decode()
    assert not logged_in(client)

    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["anna@knits.example"]
    link = LINK_RE.search(mail.outbox[0].body).group(1)
    page = client.get(link)
    assert page.status_code == 200 and "Nordic Knits" in page.content.decode()
    user.refresh_from_db()
    assert not user.is_active  # a GET (a mail scanner following the link) confirms nothing
    confirmed = client.post(link)
    assert confirmed.status_code == 302 and confirmed["Location"] == "/login"
    tenant = Tenant.objects.get(name="Nordic Knits")
    assert Membership.objects.get(tenant=tenant, user__username="anna@knits.example").role == Membership.Role.OWNER

    assert login(client, "anna@knits.example", NEW_PASSWORD).status_code == 302
    home = client.get("/")
    assert home.status_code == 200 and "Nordic Knits" in home.content.decode()
    # The link works once.
    assert Client().post(link).status_code == 400
    assert Tenant.objects.filter(name="Nordic Knits").count() == 1


def test_a_confirmation_link_cannot_be_altered():
    sign_up(Client(), "anna@knits.example")
    link = LINK_RE.search(mail.outbox[0].body).group(1)
    token = link.rsplit("/", 1)[1]
    payload, rest = token.split(":", 1)
    forged = f"/signup/confirm/{payload[:-2]}{'A' if payload[-2] != 'A' else 'B'}{payload[-1]}:{rest}"
    assert Client().post(forged).status_code == 400
    assert Client().post("/signup/confirm/not-a-token").status_code == 400
    assert not get_user_model().objects.get(username="anna@knits.example").is_active


def test_a_taken_shop_name_gets_its_own_slug_at_confirmation(tenant):
    sign_up(Client(), "c@example.com", shop="Shop A")
    Client().post(LINK_RE.search(mail.outbox[0].body).group(1))
    new = Tenant.objects.exclude(pk=tenant.pk).get(name="Shop A")
    assert new.slug.startswith("shop-a-") and new.slug != tenant.slug


# --- Sign-up: no account discovery ------------------------------------------------------------------------


def _page(response, email: str) -> str:
    html = response.content.decode().replace(email, "EMAIL")
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)


def test_signing_up_with_an_existing_address_answers_exactly_like_a_new_one(owner):
    address = get_user_model().objects.normalize_email(owner.username.upper())  # USER1@example.com
    taken = sign_up(Client(), address, shop="Hijack", password="another-long-pass-77")
    fresh = sign_up(Client(), "newcomer@example.com", shop="Hijack", password="another-long-pass-77")
    assert taken.status_code == fresh.status_code == 200
    assert _page(taken, address) == _page(fresh, "newcomer@example.com")
    # Nothing happened to the account: no shop attached, no password changed, no session.
    assert not Tenant.objects.filter(name="Hijack", memberships__user=owner).exists()
    owner.refresh_from_db()
    assert owner.check_password(PASSWORD)
    # Its owner is told by e-mail, without a link that would do anything.
    notice = next(m for m in mail.outbox if m.to == [address])
    assert notice.subject == "You already have an account" and "/signup/confirm/" not in notice.body
    assert "/login" in notice.body


def test_a_squatted_address_gets_no_link_for_the_squatters_password_and_is_freed_when_the_link_expires():
    sign_up(Client(), "victim@example.com", password="squatters-secret-99", ip="203.0.113.5")
    squat = get_user_model().objects.get(username="victim@example.com")
    sign_up(Client(), "victim@example.com", password=NEW_PASSWORD)
    waiting = mail.outbox[-1]
    assert waiting.subject == "Your sign-up is waiting for its confirmation" and "/signup/confirm/" not in waiting.body
    # Once the squatter's link has expired, the address signs up afresh with its owner's password.
    get_user_model().objects.filter(pk=squat.pk).update(date_joined=timezone.now() - dt.timedelta(hours=49))
    sign_up(Client(), "victim@example.com", password=NEW_PASSWORD)
    assert not get_user_model().objects.filter(pk=squat.pk).exists()
    Client().post(LINK_RE.search(mail.outbox[-1].body).group(1))
    client = Client()
    assert login(client, "victim@example.com", NEW_PASSWORD, ip="192.0.2.1").status_code == 302


# --- Sign-up: farming and weak passwords -------------------------------------------------------------


def test_sign_ups_from_one_address_are_limited(settings):
    settings.RECSVC_SIGNUPS_PER_HOUR = 5
    for n in range(5):
        assert sign_up(Client(), f"farm{n}@example.com", ip="203.0.113.200").status_code == 200
    refused = sign_up(Client(), "farm-extra@example.com", ip="203.0.113.200")
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert not get_user_model().objects.filter(username="farm-extra@example.com").exists()
    assert sign_up(Client(), "elsewhere@example.com", ip="192.0.2.200").status_code == 200


def test_notices_to_an_existing_address_are_capped(owner):
    for n in range(6):
        sign_up(Client(), owner.username, ip=f"203.0.113.{n + 1}")
    assert len([m for m in mail.outbox if m.to == [owner.username]]) == 3


@pytest.mark.parametrize(
    ("password", "complaint"),
    [
        ("password", "too common"),
        ("short-pw-1", "at least 12 characters"),
        ("839201746251", "entirely numeric"),
        ("bob.builder@example.com", "too similar"),
    ],
)
def test_weak_passwords_are_refused(password, complaint):
    response = sign_up(Client(), "bob.builder@example.com", password=password)
    assert response.status_code == 200 and complaint in response.content.decode()
    assert not get_user_model().objects.filter(username="bob.builder@example.com").exists()
    assert not mail.outbox


def test_a_shop_name_without_letters_is_refused():
    response = sign_up(Client(), "bob@example.com", shop="!!!")
    assert "letters or digits" in response.content.decode()
    assert not get_user_model().objects.filter(username="bob@example.com").exists()
