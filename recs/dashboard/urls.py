from django.contrib.auth import views as auth_views
from django.urls import path

from recs.dashboard import billing, integrations, rules, views
from recs.dashboard.forms import EmailAuthenticationForm

app_name = "dashboard"

urlpatterns = [
    path("", views.home, name="home"),
    path(
        "login",
        auth_views.LoginView.as_view(authentication_form=EmailAuthenticationForm, redirect_authenticated_user=True),
        name="login",
    ),
    path("logout", auth_views.LogoutView.as_view(), name="logout"),
    path("signup", views.signup, name="signup"),
    path("shops/new", views.shop_new, name="shop_new"),
    path("shops/switch", views.switch_shop, name="switch_shop"),
    path("keys", views.api_keys, name="keys"),
    path("keys/<int:key_id>/revoke", views.revoke_key, name="revoke_key"),
    path("products", views.products, name="products"),
    path("customers", views.customers, name="customers"),
    path("events", views.events, name="events"),
    path("imports", views.imports, name="imports"),
    path("integrations", integrations.integrations, name="integrations"),
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
    path("billing", billing.billing, name="billing"),
    path("billing/checkout", billing.billing_checkout, name="billing_checkout"),
    path("billing/portal", billing.billing_portal, name="billing_portal"),
]
