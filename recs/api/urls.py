from django.urls import path
from rest_framework.routers import SimpleRouter

from recs.api.catalog_views import CustomerViewSet, ProductViewSet
from recs.api.event_views import EventTypeViewSet, EventViewSet
from recs.api.import_views import ImportViewSet
from recs.api.recommend_views import PopularViewSet, RecommendationViewSet, SimilarProductsViewSet
from recs.api.rules_views import BoostViewSet, PromotionViewSet, RecommendationSettingsViewSet, RuleViewSet
from recs.integrations.api import DataExportViewSet, IntegrationViewSet

router = SimpleRouter(trailing_slash=False)
# The hottest endpoints first: Django tries the URL patterns in order, a few regexes per collection.
router.register("recommendations", RecommendationViewSet, basename="recommendation")
router.register("events", EventViewSet, basename="event")
router.register("customers", CustomerViewSet, basename="customer")
router.register("products", ProductViewSet, basename="product")
router.register("event-types", EventTypeViewSet, basename="event-type")
router.register("imports", ImportViewSet, basename="import")
router.register("products", SimilarProductsViewSet, basename="product-similar")
router.register("popular", PopularViewSet, basename="popular")
router.register("integrations", IntegrationViewSet, basename="integration")
router.register("data-exports", DataExportViewSet, basename="data-export")

router.register("rules", RuleViewSet, basename="rule")
router.register("promotions", PromotionViewSet, basename="promotion")
router.register("boosts", BoostViewSet, basename="boost")

urlpatterns = [
    *router.urls,
    # One object per shop, no id in the path (not a router collection).
    path(
        "recommendation-settings",
        RecommendationSettingsViewSet.as_view({"get": "retrieve", "put": "update", "patch": "partial_update"}),
        name="recommendation-settings",
    ),
]
