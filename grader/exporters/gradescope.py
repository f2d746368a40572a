"""Gradescope's results.json for one submission.

Every test is shown to the student ("visible"): messages of hidden tests are already limited
to what their authors allow. Performance checks appear as tests of their own.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from grader.exporters.base import Exporter
from grader.verdict import Outcome, Verdict, describe_performance


class GradescopeExporter(Exporter):
    name = "gradescope"

    def render(self, verdicts: Sequence[Verdict]) -> str:
        if len(verdicts) != 1:
            raise ValueError("a Gradescope results.json holds exactly one submission")
        verdict = verdicts[0]
        tests: list[dict[str, Any]] = []
        for number, test in enumerate(verdict.tests, start=1):
            output = test.message + (f"\nHint: {test.hint}" if test.hint else "")
            tests.append(
                {
                    "name": f"{test.name} ({test.visibility})",
                    "number": str(number),
                    "score": test.weight if test.outcome is Outcome.PASSED else 0.0,
                    "max_score": test.weight,
                    "status": "passed" if test.outcome is Outcome.PASSED else "failed",
                    "output": output,
                    "visibility": "visible",
                    "extra_data": {"outcome": test.outcome.value, "duration_s": test.duration_s},
                }
            )
        for perf in verdict.performance:
            tests.append(
                {
                    "name": f"performance: {perf.name}",
                    "score": 0.0,
                    "max_score": 0.0,
                    "status": "passed" if perf.passed else "failed",
                    "output": describe_performance(perf),
                    "visibility": "visible",
                    "extra_data": {"ratio": perf.ratio, "threshold": perf.threshold, "metric": perf.metric},
                }
            )
        document = {
            "score": verdict.score,
            "execution_time": round(verdict.timings.total_s, 3),
            "output": f"{verdict.status.label}: {verdict.summary}"
            + (f"\n\n{verdict.message}" if verdict.message else ""),
            "output_format": "text",
            "stdout_visibility": "hidden",
            "visibility": "visible",
            "tests": tests,
            "extra_data": {
                "status": verdict.status.value,
                "exercise": verdict.provenance.exercise,
                "exercise_version": verdict.provenance.exercise_version,
            },
        }
        return json.dumps(document, indent=2) + "\n"
