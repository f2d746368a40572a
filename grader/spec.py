"""The schema of `exercise.toml`, validated with messages an author can act on."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from grader.verdict import Metric
from sandbox.policy import Limits

SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class PerformanceSpec(BaseModel):
    """A threshold on the ratio submission / reference for one metric."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: Metric
    threshold: float = Field(ge=0, description="largest allowed ratio submission / reference (or exponent)")
    tolerance: float = Field(default=0.1, ge=0, le=1)
    min_pairs: int = Field(default=21, ge=5, le=1001)
    max_pairs: int = Field(default=81, ge=5, le=1001)
    budget_seconds: float = Field(default=60.0, gt=0)
    block_ms: float = Field(default=10.0, ge=5.0, le=1000.0)
    # With sizes, the check is how the metric grows: the exponent b of value ~ n^b fitted over
    # these sizes must stay under the threshold (e.g. 1.0 for linear, 0 for not growing at all).
    sizes: list[int] = Field(default_factory=list)
    # How a measured call's output is checked against the reference's (the dtype's default
    # tolerance when unset): use the correctness tests' tolerance, so that being slow is never
    # reported as being wrong.
    rtol: float | None = Field(default=None, ge=0)
    atol: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _pairs(self) -> PerformanceSpec:
        if self.max_pairs < self.min_pairs:
            raise ValueError("max_pairs must be at least min_pairs")
        if self.sizes:
            if self.metric == "device_time":
                raise ValueError("a growth check (sizes) cannot use device_time: use time, or a count")
            if len(self.sizes) < 2 or any(a >= b for a, b in zip(self.sizes, self.sizes[1:], strict=False)):
                raise ValueError("sizes must be at least two increasing numbers")
            if self.sizes[0] < 1:
                raise ValueError("sizes must be positive")
        elif self.threshold <= 0:
            raise ValueError("a ratio threshold must be greater than 0")
        elif self.threshold < 1.0 and self.metric in ("time", "device_time"):
            raise ValueError("a time threshold below 1.0 would ask students to beat the reference")
        return self

    @property
    def scaling(self) -> bool:
        return bool(self.sizes)

    @property
    def limit(self) -> float:
        if self.scaling:
            return self.threshold + self.tolerance  # an exponent: the tolerance is additive
        return self.threshold * (1 + self.tolerance)


class ForbiddenSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    imports: list[str] = Field(default_factory=list)
    calls: list[str] = Field(default_factory=list)
    # torch operators (glob patterns over names like "aten::_scaled_dot_product_flash_attention")
    # whose kernels are replaced in the submission's runner: every path to them fails, however
    # the submission reaches them (F.*, torch._C, torch.ops, a module that calls them)
    ops: list[str] = Field(default_factory=list)
    reason: str = ""

    @field_validator("ops")
    @classmethod
    def _operators(cls, patterns: list[str]) -> list[str]:
        bad = [p for p in patterns if not re.fullmatch(r"[a-z_]+::[A-Za-z0-9_.*?\[\]]+", p)]
        if bad:
            raise ValueError(f"not an operator pattern (namespace::name): {', '.join(bad)}")
        return patterns

    @field_validator("imports", "calls")
    @classmethod
    def _dotted(cls, names: list[str]) -> list[str]:
        bad = [n for n in names if not DOTTED.match(n)]
        if bad:
            raise ValueError(f"not a dotted Python name: {', '.join(bad)}")
        return names


class ExerciseSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    title: str = Field(min_length=1, max_length=120)
    summary: str = Field(min_length=1, max_length=300)
    track: str
    level: int = Field(ge=1, le=5)
    minutes: int = Field(gt=0, le=600)
    tier: Literal["free", "pro"] = "free"
    prerequisites: list[str] = Field(default_factory=list)
    resources: Literal["cpu", "gpu"] = "cpu"
    entrypoint: str
    preload: list[str] = Field(default_factory=list)
    source_kb: int = Field(default=256, gt=0, le=4096)
    limits: dict[str, float] = Field(default_factory=dict)
    forbidden: ForbiddenSpec = Field(default_factory=ForbiddenSpec)
    performance: dict[str, PerformanceSpec] = Field(default_factory=dict)

    @field_validator("id", "track")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not SLUG.match(value):
            raise ValueError(f"{value!r} is not a slug (lowercase letters, digits and single dashes)")
        return value

    @field_validator("entrypoint")
    @classmethod
    def _module(cls, value: str) -> str:
        if not IDENTIFIER.match(value):
            raise ValueError(f"{value!r} is not a Python module name")
        return value

    @field_validator("preload")
    @classmethod
    def _preload(cls, names: list[str]) -> list[str]:
        bad = [n for n in names if not DOTTED.match(n)]
        if bad:
            raise ValueError(f"not a module name: {', '.join(bad)}")
        return names

    @field_validator("limits")
    @classmethod
    def _limits(cls, values: dict[str, float]) -> dict[str, float]:
        Limits.from_mapping(values)  # raises ValueError naming the bad or unknown limit
        return values

    @property
    def sandbox_limits(self) -> Limits:
        return Limits.from_mapping(dict(self.limits))


def format_validation_error(exc: Any) -> list[str]:
    """Pydantic's errors as `field.path: message` lines."""
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ())) or "(top level)"
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        lines.append(f"{where}: {message}")
    return lines
