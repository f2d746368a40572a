"""What every service needs: settings, the database, Redis (connected lazily) and the library."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from redis import Redis
from sqlalchemy.orm import Session, sessionmaker

from grader.catalog import Catalog, Exercise, UnknownExercise
from grader.jobs import queue as jobqueue
from grader.library import Library
from grader.settings import Settings
from web.services.errors import NotFound, Unavailable


@dataclass
class Web:
    """What every request needs: settings, the database, Redis (connected lazily) and the
    exercise library."""

    settings: Settings
    factory: sessionmaker[Session]
    library: Library
    _redis: Redis | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def redis(self) -> Redis:
        with self._lock:
            if self._redis is None:
                try:
                    self._redis = jobqueue.connect(self.settings.redis_url)
                except jobqueue.QueueError as exc:
                    raise Unavailable(f"the queue is unavailable: {exc}") from None
            return self._redis

    def catalog(self) -> Catalog:
        return self.library.live(self.factory)

    def exercise(self, slug: str) -> Exercise:
        try:
            return self.catalog().get(slug)
        except (UnknownExercise, KeyError):
            raise NotFound(f"concept {slug!r}") from None
        except Exception:  # a broken exercise is not shown to learners
            raise NotFound(f"concept {slug!r}") from None
