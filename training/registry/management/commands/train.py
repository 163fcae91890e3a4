"""`manage.py train --tenant SLUG`: the same training run as the Celery task, with a progress bar."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError, transaction
from tqdm import tqdm

from tenants.context import tenant_context
from tenants.models import Tenant
from training.hyperparameters import InvalidHyperparameters, clean_hyperparameters
from training.jobs import run_training
from training.registry import lifecycle
from training.registry.models import ModelVersion
from training.runs import RunInProgress, in_flight


class Command(BaseCommand):
    help = "Train a tenant's recommender (two-tower retrieval + DLRM ranker) now, in this process."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument(
            "--params", default="{}", help='hyper-parameters as JSON, e.g. {"retrieval": {"epochs": 2}}'
        )
        parser.add_argument("--no-activate", action="store_true")
        parser.add_argument("--trigger", default="cli", choices=["cli", "demo"])
        parser.add_argument("--if-none-active", action="store_true", help="do nothing if a version is active")

    def handle(self, *args, **opts):
        tenant = Tenant.objects.filter(slug=opts["tenant"]).first()
        if tenant is None:
            raise CommandError(f"no tenant '{opts['tenant']}'")
        try:
            params = json.loads(opts["params"])
        except ValueError as exc:
            raise CommandError(f"--params is not JSON: {exc}") from exc
        if opts["if_none_active"]:
            with tenant_context(tenant.pk):
                active = lifecycle.active_version(tenant.pk)
            if active is not None:
                self.stdout.write(f"{tenant.slug}: version {active.pk} is active, not training")
                return
        # "training shop:  27%|███       | 00:41, evaluation · ranker · epoch 1 · loss 0.6931": the percent
        # once, the time so far, then what runs (tqdm puts the comma before the postfix).
        bar = tqdm(total=100, desc=f"training {tenant.slug}", unit="%", bar_format="{l_bar}{bar}| {elapsed}{postfix}")

        def echo(record: dict) -> None:
            # Label first, then the percent, then a redraw: every frame pairs a percent with its own step.
            bar.set_postfix_str(describe(record), refresh=False)
            bar.update(record["percent"] - bar.n)
            bar.refresh()

        try:
            with tenant_context(tenant.pk), transaction.atomic():
                current = in_flight(tenant.pk)
                if current is not None:
                    raise RunInProgress(current)
                version = ModelVersion.objects.create(
                    tenant=tenant, trigger=opts["trigger"], hyperparameters=clean_hyperparameters(params)
                )
        except (RunInProgress, InvalidHyperparameters) as exc:
            raise CommandError(str(exc)) from exc
        except IntegrityError as exc:  # a run was queued between the check and the insert
            raise CommandError(f"{tenant.slug}: another run has just started") from exc
        with tenant_context(tenant.pk):
            version = run_training(version, echo=echo, auto_activate=not opts["no_activate"])
        bar.close()
        if version.status == ModelVersion.Status.FAILED:
            raise CommandError(f"version {version.pk} failed: {version.status_reason}")
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in version.metrics.items() if isinstance(v, float))
        self.stdout.write(f"version {version.pk}: {version.status} ({version.status_reason}) {metrics}")


def describe(record: dict) -> str:
    """What a progress record says, each part once: "evaluation · ranker · epoch 2 · loss 0.5123"."""
    parts = [str(record[k]) for k in ("phase", "stage") if record.get(k)]
    if "epoch" in record:
        parts.append(f"epoch {int(record['epoch']) + 1}")
    if "loss" in record:
        parts.append(f"loss {record['loss']:.4f}")
    return " · ".join(dict.fromkeys(parts))  # a step named like its stage reads once
