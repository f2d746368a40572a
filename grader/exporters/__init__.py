"""Verdict exporters: our JSON, JUnit XML, Gradescope results.json."""

from grader.exporters.base import Exporter
from grader.exporters.gradescope import GradescopeExporter
from grader.exporters.json import JsonExporter
from grader.exporters.junit import JunitExporter

__all__ = ["Exporter", "GradescopeExporter", "JsonExporter", "JunitExporter"]
