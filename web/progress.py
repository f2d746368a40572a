"""Server-sent events for one submission: its state now, then every progress event the worker
publishes on Redis (queue position, running test k of n), until it is done.

Redis pub/sub carries the progress; the database has the truth. The stream re-reads the
database every few seconds, so a lost message, a Redis outage or a worker that died still ends
in the right final event. Each event is `event: <kind>` with a JSON `data:` line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
from redis import asyncio as aioredis
from redis.exceptions import RedisError
from starlette.requests import Request

from grader.events import Event, EventKind, SubmissionState
from grader.jobs import queue as jobqueue
from grader.store import Submission
from web.services import Web
from web.services.submissions import snapshot

POLL_S = 2.0
KEEPALIVE_S = 15.0
MAX_STREAM_S = 30 * 60


def _event(kind: str, data: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n"


def _load(web: Web, submission_id: int) -> Submission | None:
    with web.factory() as session:
        return session.get(Submission, submission_id)


async def stream(web: Web, request: Request, submission_id: int) -> AsyncIterator[str]:
    yield "retry: 3000\n\n"
    pubsub = None
    client = None
    try:
        try:
            client = aioredis.Redis.from_url(web.settings.redis_url, socket_connect_timeout=3)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            await pubsub.subscribe(jobqueue.channel(submission_id))
        except (RedisError, OSError, ValueError):
            pubsub = None  # the database alone still tells when it is done
        row = await asyncio.to_thread(_load, web, submission_id)
        if row is None:
            return
        state = await asyncio.to_thread(snapshot, web, row)
        yield _event("state", state)
        if SubmissionState.is_final(row.state):
            yield _event("done", {"submission": submission_id, "status": row.status or row.state})
            return
        started = last_poll = last_sent = time.monotonic()
        while time.monotonic() - started < MAX_STREAM_S:
            if await request.is_disconnected():
                return
            message = None
            if pubsub is not None:
                try:
                    message = await pubsub.get_message(timeout=1.0)
                except (RedisError, OSError):
                    pubsub = None
            else:
                await asyncio.sleep(1.0)
            if message is not None and message.get("type") == "message":
                event = Event.from_json(message["data"])
                if event is not None and event.kind is EventKind.DONE:
                    final = await asyncio.to_thread(_load, web, submission_id)
                    status = (final.status or final.state) if final else event.status
                    yield _event("done", {"submission": submission_id, "status": status})
                    return
                if event is not None:
                    yield _event("progress", event.to_dict(submission=submission_id))
                    last_sent = time.monotonic()
            now = time.monotonic()
            if now - last_poll >= POLL_S:
                last_poll = now
                row = await asyncio.to_thread(_load, web, submission_id)
                if row is not None and SubmissionState.is_final(row.state):
                    yield _event("done", {"submission": submission_id, "status": row.status or row.state})
                    return
                if row is not None and row.state == "queued":
                    yield _event("state", await asyncio.to_thread(snapshot, web, row))
                    last_sent = now
            if now - last_sent >= KEEPALIVE_S:
                yield ": keepalive\n\n"
                last_sent = now
    finally:
        # a client that went away cancels this generator: close Redis even so
        with anyio.CancelScope(shield=True):
            if pubsub is not None:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.aclose()
