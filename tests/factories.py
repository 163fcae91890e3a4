"""Test data factories (factory_boy)."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from recs.models import Customer, Event, Product
from tenants.models import Membership, Tenant


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}@example.com")
    email = factory.SelfAttribute("username")
    password = factory.PostGenerationMethodCall("set_password", "correct horse battery")


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant

    name = factory.Sequence(lambda n: f"Shop {n}")
    slug = factory.Sequence(lambda n: f"shop-{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    tenant = factory.SubFactory(TenantFactory)
    user = factory.SubFactory(UserFactory)
    role = Membership.Role.MEMBER


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    tenant = factory.SubFactory(TenantFactory)
    external_id = factory.Sequence(lambda n: f"sku-{n}")
    title = factory.Sequence(lambda n: f"Product {n}")
    category_path = factory.LazyFunction(lambda: ["Home", "Kitchen"])
    brand = "Acme"
    price = "19.90"
    currency = "EUR"
    stock = 10


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    tenant = factory.SubFactory(TenantFactory)
    external_id = factory.Sequence(lambda n: f"cust-{n}")


class EventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Event

    tenant = factory.SubFactory(TenantFactory)
    event_type = "view"
    customer = factory.SubFactory(CustomerFactory, tenant=factory.SelfAttribute("..tenant"))
    product = factory.SubFactory(ProductFactory, tenant=factory.SelfAttribute("..tenant"))
    ts = factory.Faker("date_time_this_year", tzinfo=__import__("datetime").UTC)
    event_id = factory.Sequence(lambda n: f"evt-{n}")


def change_products(tenant, changes: dict) -> None:
    """Change products as a shop does, through the catalog upsert, with what it does after its commit
    (the test's transaction never commits): `changes` maps a product (row, pk or external id) to fields."""
    from django.test import TestCase

    from recs.ingest.catalog import upsert_products

    pks = [p.pk if isinstance(p, Product) else p for p in changes if not isinstance(p, str)]
    external = dict(Product.objects.for_tenant(tenant.pk).filter(pk__in=pks).values_list("pk", "external_id"))
    items = [{"external_id": p if isinstance(p, str) else external[getattr(p, "pk", p)], **fields}
             for p, fields in changes.items()]
    with TestCase.captureOnCommitCallbacks(execute=True):
        upsert_products(tenant.pk, items, partial=True)
