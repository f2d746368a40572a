"""The queue as instructors see it: waiting and running jobs, workers, recent failures, medians."""

from __future__ import annotations

import datetime
import statistics
from typing import Any

from sqlalchemy import func, select

from grader import fingerprint
from grader.jobs import RQ_QUEUES
from grader.jobs import queue as jobqueue
from grader.store import (
    Submission,
)
from grader.store.models import utcnow
from web.services.base import Web


def queue_overview(web: Web) -> dict[str, Any]:
    from rq import Worker
    from rq.registry import FailedJobRegistry, StartedJobRegistry

    redis = web.redis()
    queues = []
    for name in RQ_QUEUES:
        q = jobqueue.queue(redis, name)
        queues.append(
            {
                "name": name,
                "waiting": len(q),
                "running": len(StartedJobRegistry(queue=q)),
                "failed": len(FailedJobRegistry(queue=q)),
            }
        )
    workers: list[dict[str, Any]] = [
        {
            "name": w.name,
            "state": str(w.get_state()),
            "queues": [q.name for q in w.queues],
            "current_job": w.get_current_job_id(),
            "successful": w.successful_job_count,
            "failed": w.failed_job_count,
        }
        for w in Worker.all(connection=redis)
    ]
    # what each worker's host is made of, and where workers of one queue differ
    prints = fingerprint.published(redis, [w["name"] for w in workers])
    differ = fingerprint.differences(prints, {w["name"]: w["queues"] for w in workers})
    for w in workers:
        w["fingerprint"] = prints.get(w["name"])
        w["differs"] = differ.get(w["name"], [])
    with web.factory() as session:
        states = dict(
            (state, count)
            for state, count in session.execute(
                select(Submission.state, func.count()).group_by(Submission.state)
            ).all()
        )
        failures = list(
            session.scalars(
                select(Submission)
                .where(Submission.state == "system_error")
                .order_by(Submission.finished_at.desc(), Submission.id.desc())
                .limit(20)
            )
        )
        for row in failures:
            row.exercise_version  # noqa: B018
        day_ago = utcnow() - datetime.timedelta(days=1)
        recent = session.execute(
            select(Submission.queued_s, Submission.grading_s).where(
                Submission.finished_at > day_ago, Submission.state == "done"
            )
        ).all()
    waits = [r[0] for r in recent if r[0] is not None]
    gradings = [r[1] for r in recent if r[1] is not None]
    return {
        "queues": queues,
        "workers": workers,
        "differing": sorted({field for fields in differ.values() for field in fields}),
        "states": states,
        "failures": failures,
        "median_wait_s": statistics.median(waits) if waits else None,
        "median_grading_s": statistics.median(gradings) if gradings else None,
    }
