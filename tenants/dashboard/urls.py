"""The dashboard's pages of the tenancy: accounts, shops, API keys, billing (in the `dashboard` namespace,
config/urls.py)."""

from django.contrib.auth import views as auth_views
from django.urls import path

from tenants.dashboard import billing, views
from tenants.dashboard.forms import EmailAuthenticationForm

urlpatterns = [
    path(
        "login",
        auth_views.LoginView.as_view(authentication_form=EmailAuthenticationForm, redirect_authenticated_user=True),
        name="login",
    ),
    path("logout", auth_views.LogoutView.as_view(), name="logout"),
    path("signup", views.signup, name="signup"),
    path("signup/confirm/<str:token>", views.signup_confirm, name="signup_confirm"),
    path("shops/new", views.shop_new, name="shop_new"),
    path("shops/switch", views.switch_shop, name="switch_shop"),
    path("keys", views.api_keys, name="keys"),
    path("keys/<int:key_id>/revoke", views.revoke_key, name="revoke_key"),
    path("billing", billing.billing, name="billing"),
    path("billing/checkout", billing.billing_checkout, name="billing_checkout"),
    path("billing/portal", billing.billing_portal, name="billing_portal"),
]
