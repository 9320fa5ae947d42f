"""The registry of token reducers: the sidebar, the CLI and the benchmark list them from here."""
from __future__ import annotations

from typing import Any, Iterable

from .base import InputSelection, Param, ParameterError, Reducer
from .rlt import RLT
from .masking import Masking
from .pooling import MViTPooling
from .simple import Dense, RandomDrop
from .sta import STA
from .tome import ToMe
from .tubes import SparseTubes
from .vtm import VTM

REDUCERS: dict[str, type[Reducer]] = {cls.name: cls for cls in (Dense, RLT, RandomDrop, Masking, ToMe, VTM, STA, SparseTubes, MViTPooling)}


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
