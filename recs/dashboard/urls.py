"""The dashboard's pages of the shop's data: overview, catalog, customers, events, imports, integrations,
rules and promotions (in the `dashboard` namespace, config/urls.py)."""

from django.urls import path

from recs.dashboard import imports, integrations, rules, views

urlpatterns = [
    path("", views.home, name="home"),
    path("products", views.products, name="products"),
    path("products/<int:pk>", views.product_detail, name="product"),
    path("customers", views.customers, name="customers"),
    path("customers/<int:pk>", views.customer_detail, name="customer"),
    path("events", views.events, name="events"),
    path("imports", imports.imports_page, name="imports"),
    path("imports/upload", imports.upload, name="import_upload"),
    path("imports/<int:pk>/progress", imports.progress, name="import_progress"),
    path("integrations", integrations.integrations, name="integrations"),
    path("integrations/new", integrations.connection_create, name="connection_create"),
    path("rules", rules.rules_page, name="rules"),
    path("rules/settings", rules.settings_update, name="rules_settings"),
    path("rules/new", rules.edit, {"kind": "rule"}, name="rule_new"),
    path("rules/<int:pk>", rules.edit, {"kind": "rule"}, name="rule_edit"),
    path("rules/<int:pk>/delete", rules.delete, {"kind": "rule"}, name="rule_delete"),
    path("boosts/new", rules.edit, {"kind": "boost"}, name="boost_new"),
    path("boosts/<int:pk>", rules.edit, {"kind": "boost"}, name="boost_edit"),
    path("boosts/<int:pk>/delete", rules.delete, {"kind": "boost"}, name="boost_delete"),
    path("promotions", rules.promotions_page, name="promotions"),
    path("promotions/new", rules.edit, {"kind": "promotion"}, name="promotion_new"),
    path("promotions/<int:pk>", rules.edit, {"kind": "promotion"}, name="promotion_edit"),
    path("promotions/<int:pk>/delete", rules.delete, {"kind": "promotion"}, name="promotion_delete"),
]
