import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("recsvc")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# The training app's label is `training` but its AppConfig is `training.registry`; its tasks live in
# `training.tasks`, which the line above would not find.
app.autodiscover_tasks(["training"])
# `serving` is not a Django app (it has no models): its tasks (index builds, precompute) are found here.
app.autodiscover_tasks(["serving"])
# Webhook deliveries' task lives with the integrations it runs (recs.integrations.tasks).
app.autodiscover_tasks(["recs.integrations"])
