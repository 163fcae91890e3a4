"""`make demo`: migrate, load the demo tenants (MovieLens and a synthetic shop), train, and serve."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.urls import reverse
from django.utils import timezone
from tqdm import tqdm

from demo import load
from recs.models import Event
from tenants.api_keys import create_api_key
from tenants.context import tenant_context
from tenants.models import Tenant
from tenants.services import sign_up_tenant

DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-shop-2026"


class _Bars:
    """One tqdm bar per loading stage."""

    def __init__(self, label: str):
        self.label, self.bars = label, {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        bar = self.bars.get(stage)
        if bar is None:
            bar = self.bars[stage] = tqdm(total=total, desc=f"{self.label}: {stage}", unit="row", unit_scale=True)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()


class Command(BaseCommand):
    help = "Start the service with demo data (MovieLens and a synthetic shop)."

    def __init__(self, *args, now: Callable[[], dt.datetime] = timezone.now, **kwargs):
        super().__init__(*args, **kwargs)
        self.now = now  # the clock the demo shops' timelines are moved to (a test passes a fixed one)

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-serve", action="store_true", help="load (and train) only")
        parser.add_argument("--synthetic-events", type=int, default=60_000)
        parser.add_argument("--no-train", action="store_true", help="skip training the demo tenants")

    def handle(self, *args, **opts):
        call_command("migrate", verbosity=0)
        started = self.now()
        tenants = [
            self._tenant("MovieLens", "movielens", lambda t, p: load.load_movielens(t, p, now=started)),
            self._tenant("Synthetic shop", "synthetic-shop", lambda t, p: load.load_synthetic(
                t, _synthetic_spec(opts["synthetic_events"]), p, now=started)),
        ]
        if not opts["no_train"]:
            for tenant in tenants:
                # The CLI entry point of training: the same run a Celery worker does, with a progress bar.
                call_command("train", tenant=tenant.slug, if_none_active=True, trigger="demo")
        site = f"http://127.0.0.1:{opts['port']}"
        self.stdout.write(f"\nDashboard login: {DEMO_EMAIL} / {DEMO_PASSWORD}  at {site}/")
        for tenant in tenants:
            _, raw = create_api_key(tenant, name="demo", scopes=["admin"])
            self.stdout.write(f"API key for {tenant.slug} (shown once): {raw}")
        # Only a hash is stored: a lost key cannot be shown again, but a new one is a click away.
        self.stdout.write(
            f"Lost a key? Keys are stored hashed and cannot be shown again: create another on the dashboard's"
            f" API keys page, {site}{reverse('dashboard:keys')} (pick the shop in the sidebar), or run the demo"
            " again, which prints new ones."
        )
        if not opts["no_serve"]:
            self._serve(opts["port"])

    def _tenant(self, name: str, slug: str, loader) -> Tenant:
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is None:
            tenant = sign_up_tenant(name=name, slug=slug, owner_email=DEMO_EMAIL, owner_password=None)
            user = get_user_model().objects.get(username=DEMO_EMAIL)
            if not user.has_usable_password():
                user.set_password(DEMO_PASSWORD)
                user.save(update_fields=["password"])
        with tenant_context(tenant.pk):
            if Event.objects.for_tenant(tenant).exists():
                self.stdout.write(f"{slug}: data already loaded")
            else:
                loaded = loader(tenant.pk, _Bars(slug))
                self.stdout.write(f"{slug}: {loaded.result.stored} events stored, {loaded.result.rejected} rejected")
                if loaded.last_event is not None:
                    self.stdout.write(
                        f"{slug}: timeline moved forward {_days(loaded.shift)} so it reads as a live shop: the last"
                        f" event is at {loaded.last_event:%Y-%m-%d %H:%M} UTC, just before this run started"
                    )
        return tenant

    def _serve(self, port: int) -> None:
        call_command("collectstatic", interactive=False, verbosity=0)  # what whitenoise serves, as deployed
        children = []
        if settings.REDIS_URL and not settings.CELERY_TASK_ALWAYS_EAGER:
            settings.VAR_DIR.mkdir(parents=True, exist_ok=True)  # beat's schedule file lives there
            children.append(subprocess.Popen([
                sys.executable, "-m", "celery", "-A", "config", "worker", "-B", "-Q",
                "default,ingest,webhooks,training,serving", "--concurrency", "1", "--loglevel", "WARNING",
                "--schedule", str(settings.VAR_DIR / "celerybeat-schedule"),
            ]))
        gunicorn = shutil.which("gunicorn", path=os.path.dirname(sys.executable)) or "gunicorn"
        self.stdout.write(f"\nServing on http://127.0.0.1:{port}/  (API docs: /v1/docs)  Ctrl-C stops.")
        server = subprocess.Popen([gunicorn, "-c", str(settings.BASE_DIR / "config" / "gunicorn.py"),
                                   "-b", f"127.0.0.1:{port}", "--log-level", "warning"])
        signal.signal(signal.SIGTERM, _interrupt)  # stopped by a supervisor: the same clean stop as Ctrl-C
        try:
            server.wait()
        except KeyboardInterrupt:
            pass
        finally:
            for child in [server, *children]:
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
                    child.wait(timeout=20)


def _days(shift: dt.timedelta) -> str:
    return f"{shift.total_seconds() / 86_400:,.1f} days"


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _synthetic_spec(n_events: int):
    from demo.synthetic import ShopSpec

    return ShopSpec(n_customers=2_000, n_products=3_000, n_events=n_events, seed=7)
