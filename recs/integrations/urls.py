from django.urls import path

from recs.integrations import views

app_name = "integrations"

# <str:>, not <uuid:>: a malformed id gets the same problem+json 404 as an unknown one.
urlpatterns = [
    path("shopify/<str:connection_id>", views.shopify_webhook, name="shopify"),
    path("woocommerce/<str:connection_id>", views.woocommerce_webhook, name="woocommerce"),
]
