"""What a scan is asked to do, checked before any work."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from explorer.accuracy import DEFAULT_REDUCERS, parse_spec
from explorer.analyze import ModelSpec
from explorer.models.reducers import ParameterError
from explorer.models.reducers.base import check_number
from explorer.runtime import PRECISIONS
from explorer.video import PATCH, check_params

ENGINES = ("local", "ray")
MAX_WORKERS = 1024
MIN_HOP, MAX_SECONDS = 1e-3, 10_000_000  # a millisecond between windows; about four months of video
MAX_WINDOWS = 1_000_000  # windows of one video: a scan plans them all before the first runs


@dataclass(frozen=True)
class ScanSettings:
    """A scan's settings. frames and size None: what the model was made for; hop None: windows back to back;
    windows None: every window of each video; budgets None: each reducer at its own settings."""

    model: ModelSpec = field(default_factory=ModelSpec)
    reducers: tuple[str, ...] = DEFAULT_REDUCERS  # specs as in accuracy: name or name:key=value,...
    budgets: tuple[float, ...] | None = None
    frames: int | None = None
    stride: int = 4
    size: int | None = None
    hop: float | None = None  # seconds from one window's start to the next
    windows: int | None = None  # at most this many windows per video
    device: str = "auto"
    precision: str = "auto"
    engine: str = "local"
    address: str | None = None  # a Ray cluster's address (engine ray); None: a local Ray
    workers: int = 1  # model replicas (engine ray)

    def check(self) -> None:
        """Raise ParameterError naming the first setting that cannot be used."""
        for spec in self.reducers:
            parse_spec(spec, budgeted=self.budgets is not None)
        if self.budgets is not None and (not self.budgets or any(not 0 < b <= 1 for b in self.budgets)):
            raise ParameterError(f"budgets must be fractions in (0, 1], got {list(self.budgets)}")
        check_params(self.frames or 1, self.stride, self.size or PATCH)
        if self.hop is not None and not (math.isfinite(self.hop) and self.hop > 0):
            raise ParameterError(f"--hop must be a positive number of seconds, got {self.hop}")
        if self.hop is not None:
            check_number("--hop (seconds)", self.hop, MIN_HOP, MAX_SECONDS)
        if self.windows is not None and self.windows < 1:
            raise ParameterError(f"--windows must be at least 1, got {self.windows}")
        if self.windows is not None:
            check_number("--windows", self.windows, 1, MAX_WINDOWS, whole=True)
        if self.engine not in ENGINES:
            raise ParameterError(f"--engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if not 1 <= self.workers <= MAX_WORKERS:
            raise ParameterError(f"--workers must be from 1 to {MAX_WORKERS}, got {self.workers}")
        if self.precision not in PRECISIONS:
            raise ParameterError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")

    def specs(self) -> list[tuple[str, float | None]]:
        """(reducer spec, budget) per row of a window, dense ("none") first."""
        budgets: tuple[float | None, ...] = self.budgets if self.budgets is not None else (None,)
        return [("none", None)] + [(spec, b) for spec in self.reducers if spec != "none" for b in budgets]

    def to_dict(self) -> dict:
        return asdict(self) | {"model": asdict(self.model)}
