"""Assignment: deterministic and sticky, split by weight, works for anonymous sessions, and two running
experiments of a shop never share a unit."""

from __future__ import annotations

from collections import Counter

import pytest
from scipy import stats

from experiments import lifecycle
from experiments.assignment import (
    HOLDOUT,
    SLOTS,
    RunningExperiment,
    RunningVariant,
    assign,
    layer_slot,
    unit_hash,
)
from experiments.lifecycle import free_slots
from experiments.running import assignment_for, running_experiments
from tenants.context import tenant_context
from tests.experiments.factories import make_experiment


def _experiment(id_: int = 1, salt: str = "s1", slots: tuple[int, int] = (0, SLOTS), holdout: float = 0.0,
                weights: tuple[float, ...] = (1.0, 1.0)) -> RunningExperiment:
    names = ["control", "b", "c", "d"]
    return RunningExperiment(id_, salt, *slots, holdout,
                             tuple(RunningVariant(names[i], w, {}) for i, w in enumerate(weights)))


def test_the_same_unit_always_gets_the_same_variant():
    running = (_experiment(),)
    first = [assign(7, running, f"cust-{i}", None) for i in range(500)]
    again = [assign(7, (_experiment(),), f"cust-{i}", None) for i in range(500)]

    assert first == again  # no state: a new process, the same answers
    assert {a.variant for a in first} == {"control", "b"}


def test_another_salt_reshuffles_the_units():
    a = [assign(7, (_experiment(salt="one"),), f"c{i}", None).variant for i in range(400)]
    b = [assign(7, (_experiment(salt="two"),), f"c{i}", None).variant for i in range(400)]

    assert 0.35 < sum(x != y for x, y in zip(a, b, strict=True)) / 400 < 0.65


@pytest.mark.parametrize("weights", [(1.0, 1.0), (1.0, 3.0), (2.0, 1.0, 1.0)])
def test_units_split_by_weight_within_chance(weights):
    holdout = 0.1
    running = (_experiment(weights=weights, holdout=holdout),)
    n = 40_000
    counts = Counter(assign(3, running, None, f"session-{i}").variant for i in range(n))

    names = ["control", "b", "c"][:len(weights)]
    observed = [counts[name] for name in names] + [counts[HOLDOUT]]
    expected = [n * (1 - holdout) * w / sum(weights) for w in weights] + [n * holdout]
    assert stats.chisquare(observed, expected).pvalue > 0.001


def test_anonymous_sessions_are_assigned_and_a_request_without_a_unit_is_not():
    running = (_experiment(),)

    by_session = assign(3, running, None, "anon-1")
    assert by_session is not None and by_session == assign(3, running, None, "anon-1")
    assert assign(3, running, None, None) is None
    # The customer id wins over the session: a signed-in customer keeps their own variant.
    assert assign(3, running, "c9", "anon-1") == assign(3, running, "c9", "other-session")


def test_unit_hash_is_uniform():
    values = [unit_hash("salt", f"u{i}") for i in range(20_000)]
    assert stats.kstest(values, "uniform").pvalue > 0.001


def test_free_slots_finds_the_first_gap():
    assert free_slots([], 300) == 0
    assert free_slots([(0, 300)], 300) == 300
    assert free_slots([(0, 300), (600, 1000)], 300) == 300
    assert free_slots([(0, 300), (500, 1000)], 300) is None


@pytest.mark.django_db
def test_two_running_experiments_never_share_a_unit(tenant):
    first = make_experiment(tenant.pk, "first", traffic_share=0.5, start=True)
    second = make_experiment(tenant.pk, "second", traffic_share=0.5, start=True)
    assert (first.slot_start, first.slot_end, second.slot_start, second.slot_end) == (0, 500, 500, 1000)

    seen = Counter()
    for i in range(4000):
        unit = (f"c{i}", None) if i % 2 else (None, f"s{i}")
        assigned = assignment_for(tenant.pk, *unit)
        assert assigned is not None  # the two cover the whole layer
        seen[assigned.experiment_id] += 1
        # The unit is in exactly one: the other experiment's range does not cover its slot.
        slot = layer_slot(tenant.pk, f"c:c{i}" if i % 2 else f"s:s{i}")
        covering = [e.id for e in running_experiments(tenant.pk) if e.covers(slot)]
        assert covering == [assigned.experiment_id]
    assert 0.45 < seen[first.pk] / 4000 < 0.55


@pytest.mark.django_db
def test_a_third_experiment_finds_no_room_and_a_stop_frees_it(tenant):
    first = make_experiment(tenant.pk, "first", traffic_share=0.6, start=True)
    third = make_experiment(tenant.pk, "third", traffic_share=0.5)
    with tenant_context(tenant.pk):
        with pytest.raises(lifecycle.Conflict):
            lifecycle.start(third)
        lifecycle.stop(first)
        started = lifecycle.start(third)
    assert (started.slot_start, started.slot_end) == (0, 500)
