"""One grading: the submission's runner, the reference (local, and in its own runner for timing),
and what the tests observed."""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from grader.catalog import Exercise
from grader.events import Event, EventKind, EventSink, ignore
from grader.harness.feedback import SubmissionImportError
from grader.harness.location import Locator
from grader.remote import RemoteError, RemoteModule, RunnerClient, RunnerDied
from grader.runner import messages
from grader.runners import ColdStart, Runners
from grader.verdict import Timings
from sandbox import Sandbox, SandboxError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from grader.measurement.protocol import FixedPairs
    from grader.pool import WarmPool

_REFERENCES: dict[str, ModuleType] = {}


class GradingSession:
    def __init__(
        self,
        exercise: Exercise,
        source: str,
        backend: Sandbox,
        *,
        seed: int,
        device: str = "cpu",
        events: EventSink = ignore,
        measure: bool = True,
        pool: WarmPool | None = None,
        calibration: Mapping[str, FixedPairs] | None = None,
    ) -> None:
        self.exercise = exercise
        self.runners: Runners = pool if pool is not None else ColdStart(backend)
        self.source = source
        self.backend = backend
        self.seed = seed
        self.device = device
        self.events = events
        self.measure = measure
        # calibrating thresholds (grader.calibrate): only these time checks are measured, each on
        # the pairs it names; the other performance checks are skipped
        self.calibration = calibration
        self.limits = exercise.spec.sandbox_limits
        self.timings = Timings()
        self.runtime: messages.Runtime | None = None  # what the runner loaded, once started
        self.student: RunnerClient | None = None
        self.module: RemoteModule | None = None
        self.import_error: SubmissionImportError | None = None
        self.locator = Locator(source, exercise.spec.entrypoint)
        self._reference_client: RunnerClient | None = None
        self._scratch: Path | None = None

    # ------------------------------------------------------------------ the submission

    def start(self) -> None:
        """Start the submission's sandbox and import its module. Sandbox failures propagate
        (they are ours); the submission's own failures are recorded for the tests to report."""
        spec = self.exercise.spec
        self.events(Event(EventKind.STAGE, "starting the sandbox"))
        started = time.perf_counter()
        self.student = self.runners.start(
            self.limits, device=self.device, preload=tuple(spec.preload), label="submission"
        )
        waited = time.perf_counter() - started  # nothing at all for a runner from a warm pool
        self.runtime = self.student.runtime
        loaded = min(self.runtime.seconds, waited)  # as the runner timed it
        try:
            self.student.guard(forbidden=list(spec.forbidden.calls), forbidden_ops=list(spec.forbidden.ops))
        except (RunnerDied, RemoteError) as exc:
            raise SandboxError(f"the sandbox did not start: {exc}") from exc  # nothing of the submission ran
        self.timings.runtime_import_s = loaded
        self.timings.sandbox_start_s = waited - loaded
        self.events(Event(EventKind.STAGE, "importing your module"))
        mark = time.perf_counter()
        try:
            names = self.student.load(spec.entrypoint, self.source)
        except RemoteError as exc:
            self.import_error = SubmissionImportError(exc, self.locator.where(exc))
            return
        except RunnerDied:
            return  # the tests report the death
        finally:
            self.timings.submission_import_s = time.perf_counter() - mark
        self.module = RemoteModule(self.student, spec.entrypoint, names)

    def submission(self) -> RemoteModule:
        if self.import_error is not None:
            raise self.import_error
        if self.student is not None and self.student.death is not None:
            raise RunnerDied(self.student.death)
        if self.module is None:
            raise RuntimeError("the submission's runner was not started")
        return self.module

    # ------------------------------------------------------------------ the reference

    def reference(self) -> ModuleType:
        """The reference solution, imported in this (trusted) process, once per version."""
        key = f"{self.exercise.slug}@{self.exercise.version}"
        if key not in _REFERENCES:
            name = "_grader_reference_" + hashlib.sha256(key.encode()).hexdigest()[:12]
            spec = importlib.util.spec_from_file_location(name, self.exercise.solution)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot import {self.exercise.solution}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
            _REFERENCES[key] = module
        return _REFERENCES[key]

    def reference_client(self) -> RunnerClient:
        """The reference in a second runner, in a sandbox identical to the submission's."""
        if self._reference_client is None:
            spec = self.exercise.spec
            client = self.runners.start(
                self.limits, device=self.device, preload=tuple(spec.preload), label="reference"
            )
            self._reference_client = client
            client.load(spec.entrypoint, self.exercise.solution.read_text(encoding="utf-8"))
        return self._reference_client

    def scratch(self) -> Path:
        """A private directory of the trusted side (files for the local reference)."""
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="grader-harness-"))
        return self._scratch

    # ------------------------------------------------------------------ bookkeeping

    def close(self) -> None:
        for client in (self.student, self._reference_client):
            if client is not None:
                client.close()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
