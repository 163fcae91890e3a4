from rest_framework.routers import SimpleRouter

from recs.api.catalog_views import CustomerViewSet, ProductViewSet
from recs.api.event_views import EventTypeViewSet, EventViewSet
from recs.api.import_views import ImportViewSet

router = SimpleRouter(trailing_slash=False)
router.register("customers", CustomerViewSet, basename="customer")
router.register("products", ProductViewSet, basename="product")
router.register("events", EventViewSet, basename="event")
router.register("event-types", EventTypeViewSet, basename="event-type")
router.register("imports", ImportViewSet, basename="import")

urlpatterns = router.urls
