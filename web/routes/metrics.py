"""/metrics for Prometheus: computed at each scrape from the database and Redis
(`web.services.metrics`). With GRADER_METRICS_TOKEN set it wants that bearer token; without, it is
open, and the operator keeps it to the scraper with the firewall or the reverse proxy."""

from __future__ import annotations

import hmac
import logging

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from web.deps import WebDep
from web.services import metrics
from web.services.errors import Unavailable

router = APIRouter(include_in_schema=False)
log = logging.getLogger(__name__)


def authorized(request: Request, token: str | None) -> bool:
    """Whether the request may read the metrics: any, without a token set; else only one that
    sends `Authorization: Bearer <token>` (compared in constant time)."""
    if not token:
        return True
    scheme, _, sent = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(sent.strip().encode(), token.encode())


@router.get("/metrics")
def scrape(request: Request, web: WebDep) -> Response:
    if not authorized(request, web.settings.metrics_token):
        return PlainTextResponse(
            "metrics need Authorization: Bearer <GRADER_METRICS_TOKEN>\n",
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    try:
        snapshot = metrics.snapshot(web)
    except Unavailable as exc:  # Redis cannot be reached at all
        log.warning("metrics: %s", exc.message)
        return PlainTextResponse(f"metrics unavailable: Redis failed ({exc.message})\n", status_code=503)
    except RedisError as exc:
        log.warning("metrics: Redis failed: %s", exc)
        return PlainTextResponse(
            f"metrics unavailable: Redis failed ({type(exc).__name__})\n", status_code=503
        )
    except SQLAlchemyError as exc:
        log.warning("metrics: the database failed: %s", exc)
        return PlainTextResponse(
            f"metrics unavailable: the database failed ({type(exc).__name__})\n", status_code=503
        )
    return Response(metrics.exposition(snapshot), media_type=CONTENT_TYPE_LATEST)
