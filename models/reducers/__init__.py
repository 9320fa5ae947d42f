"""The registry of token reducers, found on their own: every module in this folder is imported, and each
reducer class registers itself under its name (the module's file name). The sidebar, the CLI, links,
comparisons, the benchmark and the accuracy table list reducers from here; adding one is adding a file."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from typing import Any

from .base import REGISTRY, InputSelection, Param, ParameterError, Reducer


def _discover() -> dict[str, type[Reducer]]:
    """Import every module of this package; dense ("none") first, the rest by name."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    return {name: REGISTRY[name] for name in sorted(REGISTRY, key=lambda n: (n != "none", n))}


REDUCERS: dict[str, type[Reducer]] = _discover()


def parse_settings(pairs: Iterable[str], where: str = "--set") -> dict[str, str]:
    """Reducer settings written as text, ['tau=0.1', ...] -> {'tau': '0.1'}; `where` names them in the error."""
    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ParameterError(f"{where} takes key=value, got {pair!r}")
        settings[key.strip()] = value.strip()
    return settings


def make_reducer(name: str, **params: Any) -> Reducer:
    if name not in REDUCERS:
        raise ParameterError(f"unknown reducer {name!r} (choose from: {', '.join(REDUCERS)})")
    return REDUCERS[name](**params)


__all__ = ["REDUCERS", "InputSelection", "Param", "ParameterError", "Reducer", "make_reducer", "parse_settings"]
