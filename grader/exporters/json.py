"""Our own JSON: the verdict exactly as the engine built it (one object, or a list for several)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from grader.exporters.base import Exporter
from grader.verdict import Verdict


class JsonExporter(Exporter):
    name = "json"

    def render(self, verdicts: Sequence[Verdict]) -> str:
        if len(verdicts) == 1:
            return verdicts[0].model_dump_json(indent=2) + "\n"
        return json.dumps([v.model_dump(mode="json") for v in verdicts], indent=2) + "\n"
