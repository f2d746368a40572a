"""Server-sent events for one submission: its state now, then every progress event the worker
publishes on Redis (queue position, running test k of n), until it is done; and the same for an
exercise package's validation (the check running, k of n).

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
from grader.jobs import packages as jobpackages
from grader.jobs import queue as jobqueue
from grader.store import ExercisePackage, PackageState, Submission
from web.services import Web, packages
from web.services.submissions import snapshot

POLL_S = 2.0
KEEPALIVE_S = 15.0
MAX_STREAM_S = 30 * 60


def _event(kind: str, data: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n"


def _load(web: Web, submission_id: int) -> Submission | None:
    with web.factory() as session:
        return session.get(Submission, submission_id)


class Listener:
    """The events published on one Redis channel, or none at all without Redis (the database
    alone then tells when the work is done)."""

    def __init__(self, pubsub: Any) -> None:
        self.pubsub = pubsub

    async def next(self) -> Event | None:
        """The next event published within about a second, or None."""
        if self.pubsub is None:
            await asyncio.sleep(1.0)
            return None
        try:
            message = await self.pubsub.get_message(timeout=1.0)
        except (RedisError, OSError):
            self.pubsub = None  # gone: the database is re-read instead
            return None
        if message is None or message.get("type") != "message":
            return None
        return Event.from_json(message["data"])


@contextlib.asynccontextmanager
async def _listening(web: Web, channel: str) -> AsyncIterator[Listener]:
    """Subscribed to `channel` for as long as the stream lasts; Redis is closed however it ends
    (a client that went away cancels the stream)."""
    pubsub = None
    client = None
    try:
        try:
            client = aioredis.Redis.from_url(web.settings.redis_url, socket_connect_timeout=3)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            await pubsub.subscribe(channel)
        except (RedisError, OSError, ValueError):
            pubsub = None
        yield Listener(pubsub)
    finally:
        with anyio.CancelScope(shield=True):
            if pubsub is not None:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.aclose()


async def stream(web: Web, request: Request, submission_id: int) -> AsyncIterator[str]:
    yield "retry: 3000\n\n"
    async with _listening(web, jobqueue.channel(submission_id)) as listener:
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
            event = await listener.next()
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


async def package_stream(web: Web, request: Request, package_id: int) -> AsyncIterator[str]:
    """Server-sent events for an exercise package's validation: `state` (its state, and the check
    a worker is running now), `progress` (each check as it begins, `message` "checking
    wrong/loop (5 of 14)", and as it ends, with `ok`), then `done` once validated. As for a
    submission, the database is re-read every few seconds."""
    yield "retry: 3000\n\n"
    channel = jobqueue.PROGRESS_PREFIX + jobpackages.channel_key(package_id)
    async with _listening(web, channel) as listener:
        state = await asyncio.to_thread(_package_state, web, package_id)
        if state is None:
            return
        yield _event("state", state)
        if state["state"] not in WAITING:
            yield _event("done", {"package": package_id, "status": state["state"]})
            return
        started = last_poll = last_sent = time.monotonic()
        while time.monotonic() - started < MAX_STREAM_S:
            if await request.is_disconnected():
                return
            event = await listener.next()
            if event is not None and event.kind is not EventKind.DONE:
                yield _event("progress", event.to_dict(package=package_id))
                last_sent = time.monotonic()
            now = time.monotonic()
            if (event is not None and event.kind is EventKind.DONE) or now - last_poll >= POLL_S:
                last_poll = now
                fresh = await asyncio.to_thread(_package_state, web, package_id)
                if fresh is None:
                    return
                if fresh["state"] not in WAITING:
                    yield _event("done", {"package": package_id, "status": fresh["state"]})
                    return
                if fresh["state"] != state["state"]:
                    state = fresh
                    yield _event("state", state)
                    last_sent = now
            if now - last_sent >= KEEPALIVE_S:
                yield ": keepalive\n\n"
                last_sent = now


WAITING = (PackageState.QUEUED, PackageState.VALIDATING)


def _package_state(web: Web, package_id: int) -> dict[str, Any] | None:
    with web.factory() as session:
        row = session.get(ExercisePackage, package_id)
    if row is None:
        return None
    now = packages.progress(web, row)
    return {"package": row.id, "state": row.state, "message": row.message, "progress": now}
