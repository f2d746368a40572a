"""A submission's page: live progress while it is graded, then the verdict."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from grader.verdict import Verdict
from web import progress, services
from web.deps import Id, PageUser, WebDep, render

router = APIRouter(include_in_schema=False)

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def perf_chart(verdict: Verdict) -> list[dict[str, Any]]:
    """What the chart draws: per measurement, your figure against the threshold, the reference
    being 1 (ratios), with the absolute figures for the tooltip."""
    return [
        {
            "name": p.name,
            "metric": p.metric,
            "kind": p.kind,
            "ratio": p.ratio,
            "threshold": p.threshold,
            "passed": p.passed,
            "ci": [p.ci_low, p.ci_high],
            "yours": p.submission_value,
            "reference": p.reference_value,
            "unit": p.unit,
        }
        for p in verdict.performance
    ]


@router.get("/submissions/{submission_id}")
def submission_page(request: Request, submission_id: Id, user: PageUser, web: WebDep) -> Response:
    row = services.submissions.visible_submission(web, user, submission_id)
    verdict = Verdict.model_validate(row.verdict) if row.verdict else None
    slug = row.exercise_version.slug
    try:
        exercise = web.exercise(slug)
        title = exercise.spec.title
    except services.ServiceError:
        title = row.exercise_version.title
    return render(
        request,
        "submission.html",
        row=row,
        slug=slug,
        title=title,
        verdict=verdict,
        chart=perf_chart(verdict) if verdict else [],
        unlocked=services.submissions.unlocked_by(web, user, row),
        state=services.submissions.snapshot(web, row),
        source=row.source.decode("utf-8", "replace"),
        graded=services.submissions.graded_module(web, row, verdict),
        owner=row.user,
        mine=row.user_id == user.id,
    )


@router.get("/submissions/{submission_id}/events")
def submission_events(request: Request, submission_id: Id, user: PageUser, web: WebDep) -> Response:
    services.submissions.visible_submission(web, user, submission_id)
    return StreamingResponse(
        progress.stream(web, request, submission_id), media_type="text/event-stream", headers=SSE_HEADERS
    )
