"""JUnit XML, one <testsuite> per verdict, for CI systems and test report viewers.

Failed checks are <failure>, tests the submission crashed in are <error>, performance checks
appear as test cases of their own, and verdicts without tests (rejected, system error) get one
test case that says why.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from grader.exporters.base import Exporter
from grader.verdict import Outcome, Status, Verdict, describe_performance

# XML 1.0 cannot carry most control characters, even escaped.
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _clean(text: str) -> str:
    return _INVALID_XML.sub("\ufffd", text)


class JunitExporter(Exporter):
    """`suite_names`, when given, names each verdict's <testsuite> (a file's path, when one run
    grades several files of the same exercise); by default a suite is named after its exercise."""

    name = "junit"

    def __init__(self, suite_names: Sequence[str] | None = None) -> None:
        self.suite_names = suite_names

    def render(self, verdicts: Sequence[Verdict]) -> str:
        root = ET.Element("testsuites", name="grader")
        totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
        for i, verdict in enumerate(verdicts):
            suite = self._suite(verdict)
            if self.suite_names is not None and i < len(self.suite_names):
                suite.set("name", _clean(self.suite_names[i]))
            root.append(suite)
            for key in totals:
                totals[key] += int(suite.get(key) or 0)
        for key, total in totals.items():
            root.set(key, str(total))
        root.set("time", f"{sum(v.timings.total_s for v in verdicts):.3f}")
        ET.indent(root)
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"

    def _suite(self, verdict: Verdict) -> ET.Element:
        prov = verdict.provenance
        suite = ET.Element(
            "testsuite", name=prov.exercise, timestamp=prov.graded_at, time=f"{verdict.timings.total_s:.3f}"
        )
        properties = ET.SubElement(suite, "properties")
        for key, value in (
            ("status", verdict.status.value),
            ("summary", verdict.summary),
            ("score", f"{verdict.score:g}/{verdict.max_score:g}"),
            ("exercise_version", prov.exercise_version),
            ("submission_sha256", prov.submission_sha256),
            ("sandbox", prov.sandbox),
        ):
            ET.SubElement(properties, "property", name=key, value=_clean(value))
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        for test in verdict.tests:
            case = ET.SubElement(
                suite, "testcase", classname=f"{prov.exercise}.{test.visibility}", name=test.name
            )
            if test.duration_s is not None:  # hidden tests have none
                case.set("time", f"{test.duration_s:.3f}")
            counts["tests"] += 1
            text = _clean(test.message + (f"\nHint: {test.hint}" if test.hint else ""))
            if test.outcome in (Outcome.FAILED, Outcome.TOO_SLOW):
                ET.SubElement(
                    case, "failure", message=_clean(test.message), type=test.outcome.value
                ).text = text
                counts["failures"] += 1
            elif test.outcome is Outcome.ERROR:
                ET.SubElement(case, "error", message=_clean(test.message), type="error").text = text
                counts["errors"] += 1
            elif test.outcome is Outcome.SKIPPED:
                ET.SubElement(case, "skipped", message=_clean(test.message))
                counts["skipped"] += 1
        for perf in verdict.performance:
            case = ET.SubElement(
                suite, "testcase", classname=f"{prov.exercise}.performance", name=perf.name, time="0"
            )
            counts["tests"] += 1
            if not perf.passed:
                message = describe_performance(perf)
                ET.SubElement(case, "failure", message=message, type="too_slow").text = message
                counts["failures"] += 1
        if not verdict.tests:
            case = ET.SubElement(
                suite, "testcase", classname=f"{prov.exercise}.submission", name="submission", time="0"
            )
            counts["tests"] += 1
            if verdict.status is not Status.PASSED:
                kind = "failure" if verdict.status.earned else "error"
                ET.SubElement(
                    case, kind, message=_clean(verdict.summary), type=verdict.status.value
                ).text = _clean(verdict.message or verdict.summary)
                counts["failures" if kind == "failure" else "errors"] += 1
        if verdict.output:
            ET.SubElement(suite, "system-out").text = _clean(verdict.output)
        for key, count in counts.items():
            suite.set(key, str(count))
        return suite
