"""The concept map: which concepts a learner has passed, may open, or has yet to unlock.

Pure functions of the catalog and what the learner has passed; the pages and the API render
what these return. A concept unlocks when all its prerequisites are passed; a pro concept also
needs the pro plan. A passed concept stays passed whatever happens to its prerequisites.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass
from enum import StrEnum

from grader.catalog import Catalog, Exercise, Track


class ConceptStatus(StrEnum):
    LOCKED = "locked"
    UNLOCKED = "unlocked"
    PASSED = "passed"


class Plan(StrEnum):
    FREE = "free"
    PRO = "pro"


@dataclass(frozen=True)
class ConceptCard:
    slug: str
    title: str
    summary: str
    level: int
    minutes: int
    pro: bool
    status: ConceptStatus
    missing: tuple[str, ...]  # prerequisites not passed yet, in curriculum order
    needs_pro: bool  # locked (also) because the learner's plan is free

    @property
    def reason(self) -> str:
        """Why a locked concept is locked, in words a learner can act on."""
        parts = []
        if self.missing:
            parts.append("pass " + ", ".join(self.missing) + " first")
        if self.needs_pro:
            parts.append("needs the pro plan")
        return "; ".join(parts)


@dataclass(frozen=True)
class TrackView:
    track: Track
    cards: tuple[ConceptCard, ...]

    @property
    def passed(self) -> int:
        return sum(card.status is ConceptStatus.PASSED for card in self.cards)


def card(exercise: Exercise, *, passed: Set[str], plan: Plan, order: list[str]) -> ConceptCard:
    spec = exercise.spec
    missing = tuple(slug for slug in order if slug in spec.prerequisites and slug not in passed)
    needs_pro = spec.tier == "pro" and plan is not Plan.PRO
    if exercise.slug in passed:
        status = ConceptStatus.PASSED
    elif missing or needs_pro:
        status = ConceptStatus.LOCKED
    else:
        status = ConceptStatus.UNLOCKED
    return ConceptCard(
        slug=exercise.slug,
        title=spec.title,
        summary=spec.summary,
        level=spec.level,
        minutes=spec.minutes,
        pro=spec.tier == "pro",
        status=status,
        missing=missing,
        needs_pro=needs_pro,
    )


def concept_map(catalog: Catalog, *, passed: Set[str], plan: Plan) -> list[TrackView]:
    """Every track with its concept cards, in curriculum order."""
    return [
        TrackView(track, tuple(card(e, passed=passed, plan=plan, order=catalog.order) for e in exercises))
        for track, exercises in catalog.by_track()
    ]


def next_up(catalog: Catalog, views: list[TrackView]) -> ConceptCard | None:
    """The concept to open next: the first open one in curriculum order (prerequisites first,
    then earlier tracks, then lower levels), so a newcomer starts with the first foundations
    and every pass points at the next step. None once nothing is open."""
    cards = {c.slug: c for view in views for c in view.cards}
    return next(
        (cards[s] for s in catalog.order if s in cards and cards[s].status is ConceptStatus.UNLOCKED), None
    )


def newly_unlocked(catalog: Catalog, slug: str, *, passed: Set[str], plan: Plan) -> list[str]:
    """The concepts that passing `slug` unlocks (for the banner after a pass): locked before,
    open once `slug` is passed."""
    before = {c.slug: c.status for t in concept_map(catalog, passed=passed, plan=plan) for c in t.cards}
    after = concept_map(catalog, passed={*passed, slug}, plan=plan)
    return [
        c.slug
        for t in after
        for c in t.cards
        if c.status is ConceptStatus.UNLOCKED and before.get(c.slug) is ConceptStatus.LOCKED
    ]
