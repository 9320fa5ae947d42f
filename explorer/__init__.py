"""Token Reduction Explorer: see what token reduction does inside video transformers.

Python API (the app and the CLI use the same calls):

    from explorer import load_clip, build_model, analyze, make_reducer, ModelSpec, Trace
    clip = load_clip("video.mp4", frames=16, stride=4, size=224)
    model, report = build_model(ModelSpec(size="small"), clip.num_frames, 224)
    trace = analyze(clip, model, make_reducer("rlt", tau=0.1))
    trace.tokens_per_layer, trace.owner, trace.values["run_length"], trace.top_k(5)
    merged = analyze(clip, model, make_reducer("tome", budget=0.5), saliency=SaliencySpec("max"))
    trace.save("out/")            # summary.json + trace.npz; Trace.load("out/") reads them back
    trace.show(clip)              # in a notebook: the overlay, the tokens per layer and a summary
    estimate_work(make_reducer("tubes"), model).describe()   # tokens, attention, time: checked before a run

Every number the calls take is checked before any work: out of range, nan or inf is a ParameterError naming it.

    from explorer.scan import scan, ScanSettings, load     # every window of long videos and datasets
    result = scan(["videos/"], "out/scan", ScanSettings(reducers=("rlt", "tome"), budgets=(0.5,)))
    result.windows, result.summary   # a pandas DataFrame (one row per window and reducer), a dict; load("out/scan")

The names are imported when first used (PEP 562), so `from explorer.trace import Trace` needs
numpy alone: a saved trace loads in a notebook without torch, timm, PyAV or Streamlit.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from explorer.models.reducers import REDUCERS, make_reducer

    from .analyze import ModelSpec, Work, analyze, build_model, estimate_work
    from .saliency import SaliencySpec
    from .trace import Trace
    from .video import Clip, load_clip

_SOURCES = {  # public name -> the module that defines it
    "REDUCERS": "explorer.models.reducers",
    "make_reducer": "explorer.models.reducers",
    "ModelSpec": "explorer.analyze",
    "analyze": "explorer.analyze",
    "build_model": "explorer.analyze",
    "estimate_work": "explorer.analyze",
    "Work": "explorer.analyze",
    "SaliencySpec": "explorer.saliency",
    "Trace": "explorer.trace",
    "Clip": "explorer.video",
    "load_clip": "explorer.video",
}

__all__ = [
    "REDUCERS",
    "Clip",
    "ModelSpec",
    "SaliencySpec",
    "Trace",
    "Work",
    "analyze",
    "build_model",
    "estimate_work",
    "load_clip",
    "make_reducer",
]


def __getattr__(name: str) -> Any:
    """A public name, imported from its module on first use; else a submodule (explorer.video, ...)."""
    if name in _SOURCES:
        value = getattr(importlib.import_module(_SOURCES[name]), name)
        globals()[name] = value
        return value
    if not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public names and the submodules imported so far, not this file's helpers."""
    package = f"{__name__}."
    submodules = {name for name, value in globals().items() if getattr(value, "__name__", "").startswith(package)}
    return sorted(set(__all__) | submodules)


class _Package(ModuleType):
    """explorer.analyze is the function, as when the package imported it eagerly: importing the submodule
    explorer.analyze binds the module to that name on the package, so the binding is redirected to the function."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "analyze" and isinstance(value, ModuleType) and value.__name__ == f"{self.__name__}.analyze":
            value = value.analyze
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
