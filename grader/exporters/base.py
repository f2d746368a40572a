"""The exporter interface: verdicts in, one document out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from grader.verdict import Verdict


class Exporter(ABC):
    name: ClassVar[str]

    @abstractmethod
    def render(self, verdicts: Sequence[Verdict]) -> str:
        """The document for these verdicts."""

    def write(self, verdicts: Sequence[Verdict], path: Path) -> None:
        """Write the document atomically: a reader never sees half a file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(self.render(verdicts), encoding="utf-8")
        partial.replace(path)
