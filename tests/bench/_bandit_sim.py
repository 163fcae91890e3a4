"""The bandit's traffic simulator (issue 22): `bandit_lift_rel`, `bandit_significant_share`, `ope_relative_error`.

    python tests/bench/_bandit_sim.py [--seeds 50] [--sessions 144000] [--log-sessions 2000] [--visitors 36000]
                                      [--first-seed 0] [--reuse]

tests/bench/experiments.py merges `figures()` into its last line. DATABASE_URL / REDIS_URL as the other
benchmarks (tests/bench/_load.py). In process: no HTTP server; the product's own functions throughout.

The world (built once, about 8 minutes on 2 shared cores; `--reuse` keeps it for the next run):
1. The MovieLens demo tenant is loaded through the ingestion functions and trained through the training job
   (version 1). Its item embeddings define the truth's taste part: a customer's taste is the mean
   embedding of the movies they rated 4 or more, affinity = cosine(taste, item), standardised (z).
2. The truth of a click at slot k (position-based model): `exam_k * sigmoid(BETA z + appeal_i + drift_i(t)
   + B0)`, exam_k = (k + 1)^-0.7 (not the bandit's 1 / log2(k + 2)); appeal_i ~ N(0, APPEAL_SD) is what
   MovieLens never showed the model; drift_i(t) is a Brownian path per item and seed with sd DRIFT_SD after
   the 14 simulated days. Neither policy reads the truth.
3. Logged traffic: PRE_SESSIONS sessions of version 1's answers (epsilon-greedy over the head) over the 14
   days before the experiment, their impressions and clicks stored through `recs.ingest.events.ingest_events`;
   version 2 is trained on MovieLens plus that traffic: the static ranker, as good as the service can make
   it from its logs.
4. The static ranker's answer of each customer: `serving.funnel.recommend` (k 10), once per customer (the
   simulated feedback is not stored as events, so it would not change during a run).

Traffic: 144,000 answers over the 14 days (about 10,000 a day, both arms) to 36,000 visitors by default: the
test a shop would run to find a 3% lift, sized as the product's planner sizes it. The dashboard's power
calculator (`experiments.power.minimum_detectable_effect`, read at the control's goal metric) gives the
always-valid test's minimum detectable effect at 90% power; at 10,000 visitors (40,000 answers) it is about
5.8%, so a 3% lift is found in about a third of such tests, and at 36,000 about 3%. Each seed reports that
figure (`bandit_sim_planned_mde_rel`) from its own control arm. Seeds 0 .. `--seeds` - 1 are the reported ones;
the bandit's defaults (prior strength, half-life) were chosen on seeds 100-103 (`--first-seed 100`), never on the
reported seeds.

Per seed: `--visitors` visitors, each with the taste (and so the answer) of a MovieLens customer drawn at
random and a lognormal activity (671 customers are too few units for an A/B test: the split's own noise
is several percent). An experiment is created and started through `experiments.lifecycle` (variants
`static` {} and `bandit` {"bandit": true, "bandit_reward": "click"}, a fresh random salt, so a rerun
splits differently); `experiments.running.assignment_for` assigns each visitor. `--sessions` sessions over 14
simulated days, a visitor per session in proportion to activity; the static arm shows the ranker's answer;
the bandit arm's answer is re-ranked by `serving.bandit.Bandit` (state in Redis, the variant's options
from `ServingOptions.from_config` of the stored configuration), committed with `serving.bandit.commit`,
and its clicks go back through `serving.bandit.record_feedback` (what event ingestion calls after the
commit) in the same simulated second. The bandit's clock is the simulated one. The funnel is not run per
session: its answer for a customer would be the same each time.

Figures per seed: `policy_lift`, the bandit arm's expected clicks per answer (from the truth) over what the
ranker's order would have earned in the same sessions: a paired, low-noise measure of the policy alone, for
choosing settings; then clicks per answer in each arm (a ratio metric over the visitors served at least once,
the units the product counts; delta method) compared by `experiments.compare.compare` (the always-valid test,
planned at the visitors); lift = relative lift; significant = always-valid p <= 0.05 with a positive lift, at
the end. That is the test the results page runs on the goal `click_through`, a ratio metric, which the product
does not CUPED-adjust (`experiments.metrics.Metric` refuses CUPED on a ratio, and the attribution statistics
fill no pre-period covariate), so it gives `bandit_significant_share`. Beside it, `*_cuped`: what CUPED would
add: each visitor also has a pre-period, `--sessions` + `--log-sessions` sessions in the 14 days before the
test, all of them the static ranker's answer, from the same truth (the drift continued backwards from the start,
a path of its own) and the same activity, drawn from a random stream of their own (the test's draws do not
change) and blind to the arm; clicks per visitor (a mean metric) with the pre-period's clicks as the covariate
through `experiments.metrics.estimates` (a `cuped=True` metric: theta pooled within the arms), the same
always-valid test; `bandit_cuped_variance_ratio` is its lift's variance over the ratio metric's, and
`bandit_cuped_variance_reduction` what CUPED removes from unadjusted clicks per visitor's. The oracle lift
is what sorting each bandit answer's head by the truth would have given (the headroom). OPE: `--log-sessions`
more sessions, interleaved in time, served by the static ranker exploring with EPSILON (the head shuffled
uniformly with that probability: known propensities); the bandit's policy at each of those times (its Redis
posterior then, placements by Monte Carlo) is evaluated by item-position IPS, SNIPS (self-normalised per slot)
and DR (a position-based reward model on the ranker's ranks, cross-fitted on two halves), against the bandit
arm's realised clicks per answer (its online truth). `ope_relative_error` is DR's mean absolute relative error
over the seeds; IPS's and SNIPS's are beside it.

BANDIT_SIM_PRIOR / BANDIT_SIM_HALF_LIFE (environment) override the bandit's prior strength and half-life:
for exploring, not for the recorded figures, which use the product's defaults.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench import _load

K, HEAD, DAYS = 10, 5, 14
APPEAL_SD, DRIFT_SD, BETA, B0 = 0.6, 0.8, 1.0, -1.2
EXAM_POWER = 0.7
EPSILON = 0.1
PRE_SESSIONS = 12_000
SLUG = "bench-bandit-sim"
ALPHA = 0.05
PLANNED_POWER = 0.9
WORLD_SEED = 12345


def _log(message: str) -> None:
    print(f"[bandit-sim {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def exam(slots: np.ndarray | int) -> np.ndarray:
    return (np.asarray(slots, dtype=np.float64) + 1.0) ** -EXAM_POWER


@dataclass
class World:
    tenant_id: int
    customers: list[str]  # shop ids
    activity: np.ndarray  # sessions weight per customer
    items: list[list]  # per customer: the static ranker's ScoredItems (k 10)
    z: np.ndarray  # (customers, K) standardised affinity of each answer item (truth)
    item_codes: np.ndarray  # (customers, K) codes of the answer items in `appeal`
    appeal: np.ndarray  # per item code
    setup_s: float = 0.0


# --- building the world -------------------------------------------------------------------------------


def _train(tenant_id: int) -> int:
    from tenants.context import tenant_context
    from training.jobs import run_training
    from training.registry.models import ModelVersion

    with tenant_context(tenant_id):
        version = ModelVersion.objects.create(tenant_id=tenant_id, trigger="cli", hyperparameters={})
        version = run_training(version)
    if version.status != ModelVersion.Status.ACTIVE:
        raise RuntimeError(f"version {version.pk} is {version.status}: {version.status_reason}")
    return version.pk


def _answers(tenant_id: int, customers: list[str]) -> list[list]:
    from serving.funnel import recommend
    from tenants.context import tenant_context

    with tenant_context(tenant_id):
        return [recommend(tenant_id, None, customer_external_id=c, k=K).items for c in customers]


def _taste(tenant_id: int, customers: list[str]) -> tuple[np.ndarray, dict[int, int], np.ndarray]:
    """(normalised item embeddings of version 1, pk -> row, normalised taste per customer)."""
    from recs.models import Customer, Event
    from serving.registry_cache import served_model
    from tenants.context import tenant_context

    with tenant_context(tenant_id):
        model = served_model(tenant_id)
        emb = np.asarray(model.retrieval.item_embeddings, dtype=np.float64)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True) + 1e-12
        row = {int(pk): i for i, pk in enumerate(model.product_pks.tolist())}
        pk_of = dict(Customer.objects.for_tenant(tenant_id).values_list("external_id", "pk"))
        liked: dict[int, list[int]] = {}
        for customer, product in Event.objects.for_tenant(tenant_id).filter(
                event_type="rating", value__gte=4).values_list("customer_id", "product_id"):
            if product in row:
                liked.setdefault(customer, []).append(row[product])
    taste = np.zeros((len(customers), emb.shape[1]))
    for j, c in enumerate(customers):
        rows = liked.get(pk_of.get(c, -1), [])
        taste[j] = emb[rows].mean(axis=0) if rows else emb.mean(axis=0)
    taste /= np.linalg.norm(taste, axis=1, keepdims=True) + 1e-12
    return emb, row, taste


def _affinity(answers: list[list], emb: np.ndarray, row: dict[int, int], taste: np.ndarray,
              mean_emb: np.ndarray) -> np.ndarray:
    z = np.zeros((len(answers), K))
    for j, items in enumerate(answers):
        for k, item in enumerate(items[:K]):
            vec = emb[row[item.product_pk]] if item.product_pk in row else mean_emb
            z[j, k] = float(taste[j] @ vec)
    return z


def _codes(answers: list[list]) -> tuple[np.ndarray, dict[int, int]]:
    code: dict[int, int] = {}
    out = np.zeros((len(answers), K), dtype=np.int64)
    for j, items in enumerate(answers):
        for k, item in enumerate(items[:K]):
            out[j, k] = code.setdefault(item.product_pk, len(code))
    return out, code


def _attractive(z: np.ndarray, appeal: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(BETA * z + appeal + B0)))


def _pre_period(tenant_id: int, customers: list[str], activity: np.ndarray, answers: list[list],
                z_std: np.ndarray, appeal_of: dict[int, float], rng: np.random.Generator) -> np.ndarray:
    """Version 1's answers shown for 14 days (epsilon-greedy head), stored as impression and click events."""
    from recs.ingest.events import ingest_events
    from tenants.context import tenant_context

    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    start = now - dt.timedelta(days=DAYS)
    who = rng.choice(len(customers), size=PRE_SESSIONS, p=activity / activity.sum())
    when = np.sort(rng.uniform(0, DAYS * 86_400, size=PRE_SESSIONS))
    clicks = np.zeros(len(customers))
    rows: list[dict] = []
    for j, t in zip(who.tolist(), when.tolist(), strict=True):
        items = answers[j]
        n = len(items)
        if n == 0:
            continue
        order = np.arange(n)
        if rng.random() < EPSILON:
            order[:HEAD] = rng.permutation(min(HEAD, n))
        ts = (start + dt.timedelta(seconds=t)).isoformat()
        for slot, i in enumerate(order.tolist()):
            item = items[i]
            p = exam(slot) * _attractive(z_std[j, i], appeal_of[item.product_pk])
            rows.append({"type": "impression", "customer_id": customers[j], "product_id": item.external_id,
                         "timestamp": ts})
            if rng.random() < p:
                clicks[j] += 1
                rows.append({"type": "click", "customer_id": customers[j], "product_id": item.external_id,
                             "timestamp": ts})
    with tenant_context(tenant_id):
        for begin in range(0, len(rows), 20_000):
            ingest_events(tenant_id, rows[begin:begin + 20_000])
    _log(f"pre-period: {PRE_SESSIONS} sessions, {len(rows)} events, {int(clicks.sum())} clicks stored")
    return clicks


def build_world(*, reuse: bool, cache_dir: Path) -> World:
    from demo.load import load_movielens
    from tenants.context import tenant_context
    from tenants.models import Tenant

    started = time.perf_counter()
    cached = cache_dir / "world.npz"
    tenant = Tenant.objects.filter(slug=SLUG).first()
    if tenant is not None and not (reuse and cached.exists()):
        _delete_tenant(tenant.pk)
        tenant = None
    if tenant is None:
        tenant = Tenant.objects.create(name="Bandit simulator: MovieLens", slug=SLUG, plan=Tenant.Plan.SCALE)
        with tenant_context(tenant.pk):
            load_movielens(tenant.pk)
        _log("MovieLens loaded; training version 1 (the truth's embeddings)")
        _train(tenant.pk)
        rng = np.random.default_rng(WORLD_SEED)
        from recs.models import Customer

        with tenant_context(tenant.pk):
            customers = sorted(Customer.objects.for_tenant(tenant.pk).values_list("external_id", flat=True))
        activity = rng.lognormal(0.0, 0.5, size=len(customers))
        emb, row, taste = _taste(tenant.pk, customers)
        appeal_all = rng.normal(0.0, APPEAL_SD, size=emb.shape[0])
        first = _answers(tenant.pk, customers)
        raw = _affinity(first, emb, row, taste, emb.mean(axis=0))
        mu, sd = float(raw.mean()), float(raw.std()) or 1.0
        appeal_of = {pk: float(appeal_all[r]) for pk, r in row.items()}
        pre_clicks = _pre_period(tenant.pk, customers, activity, first, (raw - mu) / sd, appeal_of, rng)
        _log("training version 2 on MovieLens and the logged traffic (the static ranker)")
        _train(tenant.pk)
        cache_dir.mkdir(parents=True, exist_ok=True)
        np.savez(cached, tenant=tenant.pk, customers=np.array(customers), activity=activity, emb=emb,
                 taste=taste, row_pks=np.array(list(row)), row_idx=np.array(list(row.values())),
                 appeal_all=appeal_all, mu=mu, sd=sd, pre_clicks=pre_clicks)
    data = np.load(cached)
    customers = [str(c) for c in data["customers"]]
    row = dict(zip(data["row_pks"].tolist(), data["row_idx"].tolist(), strict=True))
    answers = _answers(tenant.pk, customers)
    emb = data["emb"]
    z = (_affinity(answers, emb, row, data["taste"], emb.mean(axis=0)) - float(data["mu"])) / float(data["sd"])
    codes, code = _codes(answers)
    appeal = np.zeros(len(code))
    rng = np.random.default_rng(WORLD_SEED + 1)
    for pk, c in code.items():  # an item newer than version 1 has an appeal of its own
        appeal[c] = data["appeal_all"][row[pk]] if pk in row else rng.normal(0.0, APPEAL_SD)
    world = World(tenant.pk, customers, data["activity"], answers, z, codes, appeal)
    world.setup_s = time.perf_counter() - started
    _log(f"world ready in {world.setup_s:.0f} s: {len(customers)} customers, {len(code)} distinct answer items")
    return world


def _delete_tenant(tenant_id: int) -> None:
    from django.db import connection

    from tenants.context import tenant_context
    from tenants.models import Tenant
    from training.registry import storage
    from training.registry.models import ModelVersion

    with tenant_context(tenant_id):
        for version_id in ModelVersion.objects.for_tenant(tenant_id).values_list("pk", flat=True):
            storage.discard(tenant_id, version_id)
        with connection.cursor() as cursor:
            for table in ("recs_event", "training_modelversion", "experiments_statssnapshot", "experiments_variant",
                          "experiments_experiment", "recs_eventtype", "recs_customerversion", "recs_productversion",
                          "recs_customer", "recs_product"):
                cursor.execute(f"DELETE FROM {table} WHERE tenant_id = %s", [tenant_id])
    Tenant.objects.filter(pk=tenant_id).delete()


# --- one seed ------------------------------------------------------------------------------------------


@dataclass
class SeedResult:
    lift: float
    p_sequential: float
    lift_cuped: float
    p_sequential_cuped: float
    variance_ratio_cuped: float  # CUPED's variance of the lift over the ratio metric's, same seed
    variance_reduction_cuped: float  # 1 - CUPED's variance of the lift over unadjusted clicks per visitor's
    oracle_lift: float
    policy_lift: float
    online: float
    expected_online: float
    ips: float
    snips: float
    dr: float
    bandit_answers: int
    static_answers: int
    planned_mde: float  # the planner's relative MDE of the always-valid test at 90% power, this test's size


def _experiment(tenant_id: int, seed: int, planned: int):
    from experiments import lifecycle, running
    from experiments.models import Experiment
    from tenants.context import tenant_context

    with tenant_context(tenant_id):
        for old in Experiment.objects.for_tenant(tenant_id).filter(status__in=["running", "paused"]):
            lifecycle.stop(old)
        experiment = lifecycle.create_experiment(tenant_id, {
            "name": f"bandit seed {seed} {uuid.uuid4().hex[:6]}", "goal": "click_through",
            "planned_units": planned,
            "variants": [{"name": "static", "weight": 1, "config": {}},
                         {"name": "bandit", "weight": 1, "config": {"bandit": True, "bandit_reward": "click"}}]})
        experiment = lifecycle.start(experiment)
    running.clear()
    return experiment


def _pbm_fit(ranks: np.ndarray, slots: np.ndarray, clicks: np.ndarray, n: int) -> np.ndarray:
    """q[r, k] = theta_k gamma_r fitted to (rank, slot, click) rows by alternating means (a Poisson fit)."""
    theta, gamma = np.ones(n), np.full(n, max(clicks.mean(), 1e-3))
    for _ in range(20):
        imp_r = np.bincount(ranks, weights=theta[slots], minlength=n)
        gamma = (np.bincount(ranks, weights=clicks, minlength=n) + 0.5 * clicks.mean()) / (imp_r + 0.5)
        imp_k = np.bincount(slots, weights=gamma[ranks], minlength=n)
        theta = (np.bincount(slots, weights=clicks, minlength=n) + 0.5 * clicks.mean()) / (imp_k + 0.5)
    return np.outer(gamma, theta)


def run_seed(world: World, seed: int, sessions: int, log_sessions: int, visitors: int) -> SeedResult:
    from core.redis_client import raw_redis
    from experiments.compare import compare
    from experiments.metrics import Metric, estimates
    from experiments.power import minimum_detectable_effect
    from experiments.running import assignment_for
    from experiments.stats import VariantStats, mean_estimate, ratio_estimate
    from serving.answers import ServingOptions
    from serving.bandit import Bandit, Feedback, commit, placement_probabilities, read_posterior, record_feedback

    tenant = world.tenant_id
    rng = np.random.default_rng(seed)
    # The shop's visitors: each has the taste, and so the answer, of a MovieLens customer, and an activity.
    taste_of = rng.integers(0, len(world.customers), size=visitors)
    activity = rng.lognormal(0.0, 0.5, size=visitors)
    experiment = _experiment(tenant, seed, visitors)
    assigned = [assignment_for(tenant, f"visitor-{seed}-{v}", None) for v in range(visitors)]
    arm = np.array([1 if a is not None and a.variant == "bandit" else 0 for a in assigned])
    bandit_cfg = next(a for a in assigned if a is not None and a.variant == "bandit")
    options = ServingOptions.from_config(bandit_cfg.config)
    if os.environ.get("BANDIT_SIM_PRIOR"):  # a development knob: the product's prior strength is its default
        import dataclasses

        options = dataclasses.replace(options, bandit=dataclasses.replace(
            options.bandit, prior_strength=float(os.environ["BANDIT_SIM_PRIOR"])))
    if os.environ.get("BANDIT_SIM_HALF_LIFE"):
        import dataclasses

        options = dataclasses.replace(options, bandit=dataclasses.replace(
            options.bandit, half_life_hours=float(os.environ["BANDIT_SIM_HALF_LIFE"])))
    clock = _Clock()
    bandit = Bandit(options.bandit, bandit_cfg.label, clock=clock, rng=np.random.default_rng(10_000 + seed))
    settings = options.bandit

    horizon = DAYS * 86_400.0
    steps = DAYS * 24
    drift = np.cumsum(rng.normal(0.0, DRIFT_SD / np.sqrt(steps), size=(steps + 1, len(world.appeal))), axis=0)
    drift[0] = 0.0

    total = sessions + log_sessions
    is_log = np.zeros(total, dtype=bool)
    is_log[rng.choice(total, size=log_sessions, replace=False)] = True
    who = rng.choice(visitors, size=total, p=activity / activity.sum())
    when = np.sort(rng.uniform(0.0, horizon, size=total))

    clicks = np.zeros(visitors)
    answers = np.zeros(visitors)
    expected_bandit = []
    expected_ranker = []  # the same bandit sessions had the ranker's order been shown (paired, from the truth)
    oracle = np.zeros(2)  # expected clicks: the static order (arm 0), the truth's best head order (arm 1)
    logs = []  # (customer, shown ranks, clicks per slot, propensity of logging, pi_B matrix)
    for s in range(total):
        v, t = int(who[s]), float(when[s])
        j = int(taste_of[v])
        items = world.items[j]
        n = len(items)
        if n == 0:
            continue
        clock.now = 1_800_000_000.0 + t
        attract = _attractive(world.z[j, :n], world.appeal[world.item_codes[j, :n]]
                              + drift[int(t / 3600.0), world.item_codes[j, :n]])
        if is_log[s]:
            order = np.arange(n)
            if rng.random() < EPSILON:
                order[:HEAD] = rng.permutation(min(HEAD, n))
            r = (rng.random(n) < exam(np.arange(n)) * attract[order]).astype(np.float64)
            h = min(settings.head, n)
            post = read_posterior(raw_redis(), tenant, bandit.scope, [items[i].product_pk for i in range(h)],
                                  settings, clock.now)
            bases = np.asarray([items[i].ranker_score or 1e-6 for i in range(h)])
            pi_b = settings.explore_share * placement_probabilities(post, bases, bandit.rng) \
                + (1 - settings.explore_share) * np.eye(h)
            logs.append((order, r, h, pi_b))
            continue
        if arm[v] == 1:
            shown = bandit.rerank(tenant, items, {"endpoint": "recommendations"})
            order = np.asarray(shown)
            rid = str(uuid.uuid4())
            if bandit.draw is not None:
                commit(tenant, rid, bandit.draw)
        else:
            order = np.arange(n)
        p = exam(np.arange(n)) * attract[order]
        r = rng.random(n) < p
        clicks[v] += r.sum()
        answers[v] += 1
        # The best any head order could do right now (the truth sorted), against this arm's own answers.
        head_best = np.sort(attract[:HEAD])[::-1] if arm[v] == 1 else attract[:HEAD]
        oracle[arm[v]] += float((exam(np.arange(min(HEAD, n))) * head_best[:n]).sum()
                                + (exam(np.arange(HEAD, n)) * attract[HEAD:n]).sum())
        if arm[v] == 1:
            expected_bandit.append(p.sum())
            expected_ranker.append(float((exam(np.arange(n)) * attract).sum()))
            if r.any():
                record_feedback(tenant, [Feedback(rid, items[i].external_id, "click") for i in order[r]], clock=clock)

    # The A/B analysis over the units the product counts (visitors served at least once): clicks per answer
    # (the goal's ratio metric, delta method), the always-valid test.
    served = answers > 0
    stats = [VariantStats.from_rows(clicks[served & (arm == a)], answers[served & (arm == a)]) for a in (0, 1)]
    effect = compare(ratio_estimate(stats[0]), ratio_estimate(stats[1]), planned_n=visitors, alpha=ALPHA)
    plan = minimum_detectable_effect(ratio_estimate(stats[0]), stats[0].n, alpha=ALPHA, power=PLANNED_POWER,
                                     ratio=stats[1].n / stats[0].n)
    # Beside it, what CUPED would give: clicks per visitor, a mean metric, with the pre-period's clicks.
    pre = _pre_period_clicks(world, seed, taste_of, activity, total)
    by_arm = {a: VariantStats.from_rows(clicks[served & (arm == a)], covariate=pre[served & (arm == a)])
              for a in (0, 1)}
    adjusted, _ = estimates(Metric("clicks_per_visitor", "clicks per visitor", cuped=True), by_arm)
    effect_cuped = compare(adjusted[0], adjusted[1], planned_n=visitors, alpha=ALPHA)
    plain = compare(mean_estimate(by_arm[0]), mean_estimate(by_arm[1]), planned_n=visitors, alpha=ALPHA)
    oracle_lift = float((oracle[1] / answers[arm == 1].sum()) / (oracle[0] / answers[arm == 0].sum()) - 1)
    online = float(clicks[arm == 1].sum() / max(answers[arm == 1].sum(), 1))

    ips, snips, dr = _ope(logs)
    _cleanup_redis(tenant, bandit.scope)
    from experiments import lifecycle
    from tenants.context import tenant_context

    with tenant_context(tenant):
        lifecycle.stop(experiment)
    return SeedResult(lift=float(effect.lift), p_sequential=float(effect.p_value_sequential), online=online,
                      lift_cuped=float(effect_cuped.lift), p_sequential_cuped=float(effect_cuped.p_value_sequential),
                      variance_ratio_cuped=float(effect_cuped.lift_se**2 / effect.lift_se**2),
                      variance_reduction_cuped=float(1.0 - effect_cuped.lift_se**2 / plain.lift_se**2),
                      oracle_lift=oracle_lift,
                      policy_lift=float(np.sum(expected_bandit) / np.sum(expected_ranker) - 1.0),
                      expected_online=float(np.mean(expected_bandit)), ips=ips, snips=snips, dr=dr,
                      bandit_answers=int(answers[arm == 1].sum()), static_answers=int(answers[arm == 0].sum()),
                      planned_mde=float(plan.mde_relative_sequential))


def _pre_period_clicks(world: World, seed: int, taste_of: np.ndarray, activity: np.ndarray,
                       sessions: int) -> np.ndarray:
    """Each visitor's clicks in the 14 days before the test, every answer the static ranker's: CUPED's covariate.

    The same truth and activity as the test (the drift runs back from the test's start as a Brownian path of
    its own, independent of the test's, as a Brownian motion's past is of its future); its own random stream,
    so the test's draws are the same with or without it. Nothing here depends on the arm.
    """
    rng = np.random.default_rng([seed, 1])
    steps = DAYS * 24
    drift = np.cumsum(rng.normal(0.0, DRIFT_SD / np.sqrt(steps), size=(steps + 1, len(world.appeal))), axis=0)
    drift[0] = 0.0  # hours before the start
    who = rng.choice(len(taste_of), size=sessions, p=activity / activity.sum())
    hour = (rng.uniform(0.0, DAYS * 86_400.0, size=sessions) / 3600.0).astype(np.int64)
    j = taste_of[who]
    lengths = np.array([len(items) for items in world.items])
    codes = world.item_codes[j]
    attract = _attractive(world.z[j], world.appeal[codes] + drift[hour[:, None], codes])
    p = exam(np.arange(K)) * attract * (np.arange(K) < lengths[j][:, None])
    clicks = np.zeros(len(taste_of))
    np.add.at(clicks, who, (rng.random(p.shape) < p).sum(axis=1))
    return clicks


def _ope(logs: list) -> tuple[float, float, float]:
    """Item-position IPS, SNIPS (self-normalised per slot) and DR of the bandit's per-answer clicks."""
    n_logs = len(logs)
    ips_sum = 0.0
    slot_num = np.zeros(K)
    slot_den = np.zeros(K)
    rows = []  # (half, rank, slot, click) for the reward model
    per_log = []
    for idx, (order, r, h, pi_b) in enumerate(logs):
        n = len(order)
        w = np.ones(n)
        for k in range(h):
            i = order[k]
            p0 = (1 - EPSILON) * float(i == k) + EPSILON / h
            w[k] = pi_b[i, k] / p0
        ips_sum += float((w * r).sum())
        slot_num[:n] += w * r
        slot_den[:n] += w
        for k in range(n):
            rows.append((idx % 2, int(order[k]), k, r[k]))
        per_log.append((order, r, h, pi_b, w))
    rows_a = np.asarray(rows)
    q = {}
    for half in (0, 1):  # cross-fitting: each half's reward model is fitted on the other half
        other = rows_a[rows_a[:, 0] != half]
        q[half] = _pbm_fit(other[:, 1].astype(int), other[:, 2].astype(int), other[:, 3], K)
    dr_sum = 0.0
    for idx, (order, r, h, pi_b, w) in enumerate(per_log):
        qh = q[idx % 2]
        n = len(order)
        direct = sum(float(pi_b[:, k] @ qh[:h, k]) for k in range(h)) + sum(float(qh[k, k]) for k in range(h, n))
        correction = float((w * (r - qh[order, np.arange(n)])).sum())
        dr_sum += direct + correction
    snips = float(np.sum(np.divide(slot_num, slot_den, out=np.zeros(K), where=slot_den > 0)))
    return ips_sum / n_logs, snips, dr_sum / n_logs


class _Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _cleanup_redis(tenant_id: int, scope: str) -> None:
    from core.redis_client import raw_redis
    from serving.bandit import state_key

    client = raw_redis()
    client.delete(state_key(tenant_id, scope))
    prefix = state_key(tenant_id, "x")[: -len("bandit:x")] + "bandit-answer:*"
    batch = []
    for key in client.scan_iter(match=prefix, count=2000):
        batch.append(key)
        if len(batch) >= 1000:
            client.delete(*batch)
            batch = []
    if batch:
        client.delete(*batch)


# --- the figures ---------------------------------------------------------------------------------------


def figures(seeds: int = 50, sessions: int = 144_000, log_sessions: int = 2_000, visitors: int = 36_000, *,
            reuse: bool = False, first_seed: int = 0,
            keep: bool = True, cache_dir: Path | None = None) -> dict:
    """The simulator's figures (a dict merged into tests/bench/experiments.py's last line)."""
    os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "1")  # the index build after training runs in process
    _load.bootstrap_django()
    import logging

    logging.getLogger("torch.fx._symbolic_trace").setLevel(logging.ERROR)
    cache_dir = cache_dir or Path(os.environ.get("RECSVC_BENCH_CACHE", "/tmp/recsvc-bench-bandit"))
    world = build_world(reuse=reuse, cache_dir=cache_dir)
    started = time.perf_counter()
    results = []
    for seed in range(first_seed, first_seed + seeds):
        res = run_seed(world, seed, sessions, log_sessions, visitors)
        results.append(res)
        _log(f"seed {seed}: lift {res.lift:+.3f} (policy {res.policy_lift:+.3f}, oracle {res.oracle_lift:+.3f}), "
             f"p_seq {res.p_sequential:.4f} (CUPED: lift {res.lift_cuped:+.3f}, p_seq {res.p_sequential_cuped:.4f}), "
             f"online {res.online:.4f}, IPS {res.ips:.4f}, SNIPS {res.snips:.4f}, DR {res.dr:.4f}, "
             f"planned MDE {res.planned_mde:.3f}")
    seeds_s = time.perf_counter() - started
    online = np.array([r.online for r in results])

    def rel_error(values: list[float]) -> float:
        return float(np.mean(np.abs(np.asarray(values) - online) / online))

    out = {
        "bandit_lift_rel": round(float(np.mean([r.lift for r in results])), 4),
        "bandit_oracle_lift_rel": round(float(np.mean([r.oracle_lift for r in results])), 4),
        "bandit_policy_lift_rel": round(float(np.mean([r.policy_lift for r in results])), 4),
        "bandit_lift_rel_median": round(float(np.median([r.lift for r in results])), 4),
        "bandit_significant_share": round(float(np.mean([(r.p_sequential <= ALPHA) and r.lift > 0
                                                         for r in results])), 4),
        "bandit_lift_rel_cuped": round(float(np.mean([r.lift_cuped for r in results])), 4),
        "bandit_significant_share_cuped": round(float(np.mean([(r.p_sequential_cuped <= ALPHA) and r.lift_cuped > 0
                                                               for r in results])), 4),
        "bandit_cuped_variance_ratio": round(float(np.mean([r.variance_ratio_cuped for r in results])), 4),
        "bandit_cuped_variance_reduction": round(float(np.mean([r.variance_reduction_cuped for r in results])), 4),
        "ope_relative_error": round(rel_error([r.dr for r in results]), 4),
        "ope_relative_error_ips": round(rel_error([r.ips for r in results]), 4),
        "ope_relative_error_snips": round(rel_error([r.snips for r in results]), 4),
        "ope_relative_error_dr": round(rel_error([r.dr for r in results]), 4),
        "bandit_online_clicks_per_answer": round(float(online.mean()), 4),
        "bandit_sim_planned_mde_rel": round(float(np.mean([r.planned_mde for r in results])), 4),
        "bandit_sim_seeds": seeds,
        "bandit_sim_first_seed": first_seed,
        "bandit_sim_sessions_per_seed": sessions,
        "bandit_sim_log_sessions_per_seed": log_sessions,
        "bandit_sim_customers": len(world.customers),
        "bandit_sim_visitors": visitors,
        "bandit_sim_setup_s": round(world.setup_s, 1),
        "bandit_sim_seeds_s": round(seeds_s, 1),
    }
    if not keep:
        _delete_tenant(world.tenant_id)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--sessions", type=int, default=144_000)
    parser.add_argument("--log-sessions", type=int, default=2_000)
    parser.add_argument("--visitors", type=int, default=36_000)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds first-seed .. first-seed + seeds - 1 (settings are chosen on seeds >= 100)")
    parser.add_argument("--reuse", action="store_true", help="reuse the world a previous run kept")
    args = parser.parse_args()
    print(json.dumps(figures(args.seeds, args.sessions, args.log_sessions, args.visitors, reuse=args.reuse,
                             first_seed=args.first_seed)))


if __name__ == "__main__":
    main()
