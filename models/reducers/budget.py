"""A token budget for any reducer, so that different reducers can be compared at the same cost.

The budget is the average number of tokens over the layers of the trace (the input and
the output of every block: the average height of the tokens-per-layer chart), as a
fraction of the dense count. Each reducer names the one parameter (its knob) that moves
that average monotonically; the knob is searched by bisection over its range.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from .base import ParameterError, Reducer

SEARCH_STEPS = 40


def fit_budget(
    reducer: Reducer, video: torch.Tensor, grid: tuple[int, int, int], tubelet: int, patch: int, depth: int
) -> Reducer:
    """A copy of the reducer whose knob brings the average tokens per layer closest to its budget."""
    budget = reducer.values.get("budget", 0.0)
    knob = getattr(reducer, "budget_knob", None)
    if not budget:
        return reducer
    if knob is None:
        raise ParameterError(f"reducer {reducer.name!r} cannot be fitted to a token budget")
    param = next(p for p in reducer.params if p.name == knob)
    if param.low is None or param.high is None:
        raise TypeError(f"{reducer.name}'s budget knob {knob!r} needs a range (low and high)")
    bottom, top = float(param.low), float(param.high)
    target = budget * np.prod(grid)

    def with_knob(value: float) -> Reducer:
        fixed = getattr(reducer, "budget_fixed", {})  # settings the knob needs (random drop: not matching RLT)
        return type(reducer)(**{**reducer.values, **fixed, knob: param.kind(value), "budget": 0.0})

    @functools.cache  # the final pick asks again for values the search already measured
    def average(value: float) -> float:
        return float(np.mean(with_knob(value).layer_tokens(video, grid, tubelet, patch, depth)))

    low, high = bottom, top
    if param.kind is int:
        high = min(high, float(np.prod(grid)))  # beyond the token count an integer knob changes nothing
    rising = average(high) >= average(low)
    for _ in range(SEARCH_STEPS):
        if (param.kind is int and high - low <= 1) or high - low <= 1e-4 * (top - bottom):
            break
        middle = (low + high) / 2 if param.kind is float else float((int(low) + int(high)) // 2)
        if (average(middle) < target) == rising:
            low = middle
        else:
            high = middle
    best = min((low, high), key=lambda v: abs(average(v) - target))
    return with_knob(best)
