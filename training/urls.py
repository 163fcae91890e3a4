"""Training API routes, mounted under /v1/ by config/urls.py."""

from rest_framework.routers import SimpleRouter

from training.api import ModelVersionViewSet, TrainingRunViewSet

router = SimpleRouter(trailing_slash=False)
router.register("training/runs", TrainingRunViewSet, basename="training-run")
router.register("models", ModelVersionViewSet, basename="model-version")

urlpatterns = router.urls
