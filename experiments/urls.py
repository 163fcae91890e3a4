"""/v1/experiments (config/urls.py includes it under v1/)."""

from rest_framework.routers import SimpleRouter

from experiments.api import ExperimentViewSet

router = SimpleRouter(trailing_slash=False)
router.register("experiments", ExperimentViewSet, basename="experiment")

urlpatterns = router.urls
