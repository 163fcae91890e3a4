from rest_framework.routers import SimpleRouter

from recs.api.catalog_views import CustomerViewSet, ProductViewSet
from recs.api.event_views import EventTypeViewSet, EventViewSet
from recs.api.import_views import ImportViewSet
from recs.api.recommend_views import PopularViewSet, RecommendationViewSet, SimilarProductsViewSet
from recs.integrations.api import DataExportViewSet, IntegrationViewSet

router = SimpleRouter(trailing_slash=False)
router.register("customers", CustomerViewSet, basename="customer")
router.register("products", ProductViewSet, basename="product")
router.register("events", EventViewSet, basename="event")
router.register("event-types", EventTypeViewSet, basename="event-type")
router.register("imports", ImportViewSet, basename="import")
router.register("recommendations", RecommendationViewSet, basename="recommendation")
router.register("products", SimilarProductsViewSet, basename="product-similar")
router.register("popular", PopularViewSet, basename="popular")
router.register("integrations", IntegrationViewSet, basename="integration")
router.register("data-exports", DataExportViewSet, basename="data-export")

urlpatterns = router.urls
