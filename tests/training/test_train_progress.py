"""The training progress a person watches (`manage.py train`'s bar, the dashboard's line): each label once,
and a bar that keeps moving and names the step through the long evaluation stage."""

from __future__ import annotations

import json
import re

import pytest
from django.core.management import call_command

from demo.load import load_synthetic
from demo.synthetic import ShopSpec
from tenants.context import tenant_context
from tests.factories import TenantFactory
from training.jobs import SCORING_STEP, ProgressRecorder
from training.registry.management.commands.train import describe
from training.registry.models import ModelVersion

pytestmark = pytest.mark.django_db
TINY = {"retrieval": {"dim": 16, "epochs": 1, "batch_size": 512}, "ranker": {"epochs": 1, "batch_size": 512},
        "num_candidates": 50}


def test_the_evaluation_stage_moves_through_its_steps_and_names_them(all_tenants):
    records = []
    version = ModelVersion.objects.create(tenant=TenantFactory(), hyperparameters=TINY)
    recorder = ProgressRecorder(version, echo=records.append)
    recorder.set_stage("loading")
    recorder.set_stage("evaluation", steps=4)
    # What training/pipeline.py's trainers report, in order: each restarts its own percent.
    for stage in ("retrieval", "ranker", "retrieval"):
        for percent in (0.0, 50.0, 100.0):
            recorder({"stage": stage, "epoch": 0, "step": 1, "loss": 0.5, "percent": percent})
    recorder.step(SCORING_STEP)
    recorder.set_stage("serving")

    assert records[0] == {"phase": "loading", "percent": 0.0}  # the stage once, no step named like it
    percents = [r["percent"] for r in records]
    assert percents == sorted(percents)
    evaluation = [(r.get("stage"), r["percent"]) for r in records if r["phase"] == "evaluation"]
    assert evaluation == [
        (None, 5.0),
        ("retrieval", 5.0), ("retrieval", 10.62), ("retrieval", 16.25),
        ("ranker", 16.25), ("ranker", 21.88), ("ranker", 27.5),
        ("retrieval", 27.5), ("retrieval", 33.12), ("retrieval", 38.75),
        (SCORING_STEP, 38.75),
    ]
    assert records[-1] == {"phase": "serving", "percent": 50.0}
    assert version.progress == records[-1]


def test_describe_says_each_part_once():
    assert describe({"phase": "loading", "stage": "loading", "percent": 0.0}) == "loading"
    assert describe({"phase": "evaluation", "stage": "ranker", "epoch": 1, "loss": 0.51234, "percent": 20.0}) == (
        "evaluation · ranker · epoch 2 · loss 0.5123"
    )


@pytest.mark.slow
def test_the_cli_bar_reads_each_label_once_and_names_every_step(all_tenants, settings, tmp_path, capsys):
    settings.RECSVC_ARTIFACT_DIR = tmp_path
    tenant = TenantFactory()
    with tenant_context(tenant.pk):
        load_synthetic(tenant.pk, ShopSpec(n_customers=150, n_products=300, n_events=6_000, seed=3))
    call_command("train", tenant=tenant.slug, params=json.dumps(TINY))

    err = capsys.readouterr().err
    # tqdm redraws the line: each "\r" starts a frame "training <slug>: NN%|...| 00:02, <what runs>".
    frames = [(p, label or "") for p, label in re.findall(r"(\d+)%\|[^|]*\| [\d:]+(?:, ([^\r\n]*))?", err)]
    labels = [label.strip() for _, label in frames if label.strip()]
    assert not re.search(r"\d+%\|[^|]*\| \d+%", err)  # the percent once
    assert labels and not any(re.search(r"\b(\w+) \1\b", label) for label in labels), labels
    assert "loading" in labels
    seen = {label.split(" · ")[1] for label in labels if label.startswith("evaluation · ")}
    assert {"retrieval", "ranker", SCORING_STEP} <= seen
    ranker = [int(p) for p, label in frames if label.startswith("evaluation · ranker")]
    scoring = [int(p) for p, label in frames if label.startswith(f"evaluation · {SCORING_STEP}")]
    assert min(ranker) >= 16 and max(ranker) <= 28 and scoring == [39]  # 38.75%
