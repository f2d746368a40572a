"""The concept map's rules, as tables of cases over the real curriculum."""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.catalog import Catalog, load_catalog
from web.concepts import ConceptStatus, Plan, concept_map, newly_unlocked, next_up

ROOT = Path(__file__).resolve().parents[2]
LOCKED, UNLOCKED, PASSED = ConceptStatus.LOCKED, ConceptStatus.UNLOCKED, ConceptStatus.PASSED


@pytest.fixture(scope="module")
def curriculum() -> Catalog:
    return load_catalog(ROOT / "exercises", ROOT / "solutions")


def statuses(catalog: Catalog, passed: set[str], plan: Plan) -> dict[str, ConceptStatus]:
    return {c.slug: c.status for t in concept_map(catalog, passed=passed, plan=plan) for c in t.cards}


@pytest.mark.parametrize(
    ("passed", "plan", "slug", "expected"),
    [
        # no prerequisites: open from the start
        (set(), Plan.FREE, "causal-masking", UNLOCKED),
        (set(), Plan.FREE, "bpe-merges", UNLOCKED),
        # one prerequisite, passed or not
        (set(), Plan.FREE, "bpe-encode", LOCKED),
        ({"bpe-merges"}, Plan.FREE, "bpe-encode", UNLOCKED),
        # all prerequisites needed, not some
        ({"causal-masking", "rmsnorm"}, Plan.FREE, "kv-cache", LOCKED),
        ({"causal-masking", "rmsnorm", "rope"}, Plan.FREE, "kv-cache", UNLOCKED),
        # pro concepts need the pro plan as well as their prerequisites
        ({"causal-masking"}, Plan.FREE, "online-softmax", LOCKED),
        ({"causal-masking"}, Plan.PRO, "online-softmax", UNLOCKED),
        (set(), Plan.PRO, "online-softmax", LOCKED),
        # passed stays passed, even on a plan that would lock it now
        ({"causal-masking", "online-softmax"}, Plan.FREE, "online-softmax", PASSED),
        ({"bpe-encode"}, Plan.FREE, "bpe-encode", PASSED),
    ],
)
def test_status(
    curriculum: Catalog, passed: set[str], plan: Plan, slug: str, expected: ConceptStatus
) -> None:
    assert statuses(curriculum, passed, plan)[slug] is expected


def test_a_locked_card_says_what_to_do(curriculum: Catalog) -> None:
    cards = {c.slug: c for t in concept_map(curriculum, passed={"rmsnorm"}, plan=Plan.FREE) for c in t.cards}
    assert cards["kv-cache"].missing == ("causal-masking", "rope")
    assert cards["kv-cache"].reason == "pass causal-masking, rope first"
    assert cards["online-softmax"].reason == "pass causal-masking first; needs the pro plan"
    # passed stays passed, even with a prerequisite not passed (added to the curriculum later)
    assert cards["rmsnorm"].reason == "pass layernorm first" and cards["rmsnorm"].status is PASSED


def test_tracks_keep_the_curriculum_order_and_count_passes(curriculum: Catalog) -> None:
    views = concept_map(curriculum, passed={"bpe-merges", "bpe-encode"}, plan=Plan.FREE)
    assert [v.track.id for v in views] == [t.id for t in curriculum.tracks]
    assert views[0].track.id == "foundations"
    tokenization = views[1]
    assert [c.slug for c in tokenization.cards] == ["bpe-merges", "bpe-encode"]
    assert tokenization.passed == 2
    assert sum(len(v.cards) for v in views) == len(curriculum.order)


@pytest.mark.parametrize(
    ("passed", "plan", "slug", "unlocks"),
    [
        (set(), Plan.FREE, "bpe-merges", ["bpe-encode"]),
        # the pro concepts it opens stay locked on the free plan
        (set(), Plan.FREE, "causal-masking", ["multi-head-attention", "rope", "sinusoidal-positions"]),
        (
            set(),
            Plan.PRO,
            "causal-masking",
            "multi-head-attention online-softmax rope sinusoidal-positions sliding-window-attention".split(),
        ),
        ({"autograd-engine"}, Plan.FREE, "activations", ["mlp-backprop"]),
        ({"mlp-backprop"}, Plan.FREE, "layernorm", ["rmsnorm"]),
        ({"causal-masking", "rmsnorm"}, Plan.FREE, "rope", ["kv-cache"]),
        ({"causal-masking"}, Plan.FREE, "rope", []),  # kv-cache still needs rmsnorm
    ],
)
def test_what_a_pass_unlocks(
    curriculum: Catalog, passed: set[str], plan: Plan, slug: str, unlocks: list[str]
) -> None:
    assert sorted(newly_unlocked(curriculum, slug, passed=passed, plan=plan)) == unlocks


def walk(catalog: Catalog, plan: Plan) -> list[str]:
    """The concepts in the order "next up" leads a learner who passes each one it points at."""
    passed: list[str] = []
    while (upcoming := next_up(catalog, concept_map(catalog, passed=set(passed), plan=plan))) is not None:
        passed.append(upcoming.slug)
    return passed


def test_a_newcomer_starts_with_the_foundations(curriculum: Catalog) -> None:
    opened = {s for s, status in statuses(curriculum, set(), Plan.FREE).items() if status is UNLOCKED}
    # the foundations' first steps, and the other tracks' doors for those who know them already
    assert opened == {"activations", "autograd-engine", "bpe-merges", "causal-masking"}
    path = walk(curriculum, Plan.FREE)
    assert path[:5] == ["activations", "autograd-engine", "mlp-backprop", "dropout", "layernorm"]
    assert {curriculum.exercises[s].spec.track for s in path[:5]} == {"foundations"}


@pytest.mark.parametrize("plan", [Plan.FREE, Plan.PRO])
def test_next_up_leads_through_every_concept_the_plan_opens(curriculum: Catalog, plan: Plan) -> None:
    path = walk(curriculum, plan)
    opened = {s for s, e in curriculum.exercises.items() if plan is Plan.PRO or e.spec.tier == "free"}
    assert len(path) == len(set(path)) and set(path) == opened  # no free concept waits on a pro one
    place = {s: i for i, s in enumerate(path)}
    for slug in path:
        assert all(place[p] < place[slug] for p in curriculum.exercises[slug].spec.prerequisites)
