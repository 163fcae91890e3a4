"""A small shop for the dashboard's page and browser tests."""

from __future__ import annotations

import datetime as dt

from tests.factories import CustomerFactory, EventFactory, ProductFactory

OCT_2016 = dt.datetime(2016, 10, 16, 14, 5, 9, tzinfo=dt.UTC)


def make_shop(tenant, other_tenant) -> dict:
    """Shop A in 2016, no model serving: four products whose popularity orders the answers (gift card, kettle,
    mug, teapot), and Ann, who viewed the teapot. Shop B: a customer and a product of its own."""
    kettle = ProductFactory(tenant=tenant, external_id="kettle", title="Blue kettle", brand="Acme")
    mug = ProductFactory(tenant=tenant, external_id="mug", title="Red mug", brand="Other")
    gift = ProductFactory(tenant=tenant, external_id="gift", title="Gift card", brand="Other",
                          category_path=["Gift cards"])
    teapot = ProductFactory(tenant=tenant, external_id="teapot", title="Teapot", brand="Other")
    crowd = CustomerFactory(tenant=tenant, external_id="crowd")
    for product, views in ((gift, 8), (kettle, 6), (mug, 4), (teapot, 2)):
        for i in range(views):
            EventFactory(tenant=tenant, customer=crowd, product=product, ts=OCT_2016 - dt.timedelta(hours=i))
    ann = CustomerFactory(tenant=tenant, external_id="ann", attributes={"tier": "gold"})
    EventFactory(tenant=tenant, customer=ann, product=teapot, event_type="view", ts=OCT_2016)
    b_customer = CustomerFactory(tenant=other_tenant, external_id="bob")
    b_product = ProductFactory(tenant=other_tenant, external_id="b-thing", title="Shop B thing")
    return {"kettle": kettle, "mug": mug, "gift": gift, "teapot": teapot, "ann": ann, "crowd": crowd,
            "b_customer": b_customer, "b_product": b_product}
