"""The concept map's rules, as tables of cases over the real curriculum."""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.catalog import Catalog, load_catalog
from web.concepts import ConceptStatus, Plan, concept_map, newly_unlocked

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
    assert cards["rmsnorm"].reason == "" and cards["rmsnorm"].status is PASSED


def test_tracks_keep_the_curriculum_order_and_count_passes(curriculum: Catalog) -> None:
    views = concept_map(curriculum, passed={"bpe-merges", "bpe-encode"}, plan=Plan.FREE)
    assert [v.track.id for v in views] == [t.id for t in curriculum.tracks]
    tokenization = views[0]
    assert [c.slug for c in tokenization.cards] == ["bpe-merges", "bpe-encode"]
    assert tokenization.passed == 2
    assert sum(len(v.cards) for v in views) == len(curriculum.order)


@pytest.mark.parametrize(
    ("passed", "plan", "slug", "unlocks"),
    [
        (set(), Plan.FREE, "bpe-merges", ["bpe-encode"]),
        (set(), Plan.FREE, "causal-masking", ["rope"]),  # online-softmax stays locked: pro
        (set(), Plan.PRO, "causal-masking", ["online-softmax", "rope"]),
        ({"causal-masking", "rmsnorm"}, Plan.FREE, "rope", ["kv-cache"]),
        ({"causal-masking"}, Plan.FREE, "rope", []),  # kv-cache still needs rmsnorm
    ],
)
def test_what_a_pass_unlocks(
    curriculum: Catalog, passed: set[str], plan: Plan, slug: str, unlocks: list[str]
) -> None:
    assert sorted(newly_unlocked(curriculum, slug, passed=passed, plan=plan)) == unlocks
