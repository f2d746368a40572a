"""A warm pool of runners: sandboxes started ahead, with the runtime (torch) already imported.

Each runner serves one submission (or one reference) and is then destroyed; the pool refills in
the background. A runner's limits are fixed when its sandbox starts (cgroup, rlimits, tmpfs), so
runners are kept per `(limits, device, preload)`: the pool learns which keys it is asked for and
keeps `size` runners ready for each of the `keys` most recently asked. A request the pool cannot
serve starts a runner cold, as without a pool.

Nothing of a submission ever runs in a runner before it leaves the pool, and a runner that died
while waiting is discarded, so a pooled runner is exactly as fresh as a cold one; only its clock
(the wall-time limit) starts when it is taken.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from dataclasses import dataclass

from grader.remote import RunnerClient
from grader.runners import start_runner
from sandbox import Limits, Sandbox, SandboxError

log = logging.getLogger("grader.pool")


@dataclass(frozen=True)
class PoolKey:
    limits: Limits
    device: str
    preload: tuple[str, ...]


class WarmPool:
    def __init__(self, backend: Sandbox, *, size: int = 2, keys: int = 2) -> None:
        if size < 1 or keys < 1:
            raise ValueError("a warm pool needs size >= 1 and keys >= 1")
        self.backend, self.size, self.keys = backend, size, keys
        self._ready: dict[PoolKey, collections.deque[RunnerClient]] = {}
        self._wanted: collections.OrderedDict[PoolKey, None] = collections.OrderedDict()
        self._changed = threading.Condition()
        self._stopped = False
        self.hits = self.misses = self.failures = 0
        self._thread = threading.Thread(target=self._fill, name="warm-pool", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ the caller's side

    def start(self, limits: Limits, *, device: str, preload: tuple[str, ...], label: str) -> RunnerClient:
        """A runner for `limits` with `preload` imported: a warm one if ready, else a cold one."""
        key = PoolKey(limits, device, tuple(preload))
        client = self._take(key)
        if client is None:
            self.misses += 1
            client = self._warm_up(key)
        else:
            self.hits += 1
        client.label = label
        client.restart_clock()
        return client

    def _take(self, key: PoolKey) -> RunnerClient | None:
        with self._changed:
            self._wanted[key] = None
            self._wanted.move_to_end(key)
            while len(self._wanted) > self.keys:  # forget the key asked least recently
                old, _ = self._wanted.popitem(last=False)
                for stale in self._ready.pop(old, collections.deque()):
                    stale.close()
            ready = self._ready.setdefault(key, collections.deque())
            client = None
            while ready and client is None:
                candidate = ready.popleft()
                if candidate.process.poll() is None and candidate.death is None:
                    client = candidate
                else:
                    candidate.close()
            self._changed.notify_all()
            return client

    def close(self) -> None:
        with self._changed:
            self._stopped = True
            self._changed.notify_all()
        self._thread.join(timeout=30)
        with self._changed:
            for ready in self._ready.values():
                for client in ready:
                    client.close()
            self._ready.clear()

    def ready(self) -> int:
        with self._changed:
            return sum(len(ready) for ready in self._ready.values())

    def wait_ready(self, count: int, timeout: float) -> bool:
        """Wait until `count` runners are ready (benchmarks and tests)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while sum(len(r) for r in self._ready.values()) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return True

    # ------------------------------------------------------------------ the background side

    def _warm_up(self, key: PoolKey) -> RunnerClient:
        return start_runner(self.backend, key.limits, device=key.device, preload=key.preload)

    def _missing(self) -> PoolKey | None:
        for key in reversed(self._wanted):  # the most recently asked first
            if len(self._ready.get(key, ())) < self.size:
                return key
        return None

    def _fill(self) -> None:
        backoff = 0.0
        while True:
            with self._changed:
                while not self._stopped and (self._missing() is None or backoff):
                    if backoff:
                        self._changed.wait(backoff)
                        backoff = 0.0
                    else:
                        self._changed.wait()
                if self._stopped:
                    return
                key = self._missing()
            if key is None:
                continue
            try:
                client = self._warm_up(key)
            except (SandboxError, OSError) as exc:
                self.failures += 1
                log.warning("warm pool: a runner failed to start: %s", exc)
                backoff = min(30.0, 1.0 * self.failures)
                continue
            with self._changed:
                if self._stopped or key not in self._wanted:
                    with contextlib.suppress(Exception):
                        client.close()
                else:
                    self._ready.setdefault(key, collections.deque()).append(client)
                    self._changed.notify_all()
