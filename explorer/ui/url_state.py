"""The app's state in the URL, so that a link reopens the same view.

restore() runs at the start of a session's first run, before any widget: it copies the link's query
parameters into st.session_state, where the widgets with those keys pick them up. publish() runs at the
end of every run: it writes each synced widget whose value differs from its default back to the URL, so
a default view has a bare link. SYNCED lists the synced widget keys; register() adds one.

An uploaded video cannot travel in a link (its bytes live in this session only): a link to an upload
reopens on "Upload" with no file.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import streamlit as st

from explorer.models.reducers import REDUCERS
from explorer.models.video_vit import SIZES

from ..analyze import DEMO, DEMO_WEIGHTS
from ..saliency import FUSIONS
from ..values import VALUES
from ..video import SAMPLES
from .compare import DEFAULT_REDUCERS, MAX_REDUCERS
from .sidebar import NATIVE_SIZE, SIZE_OPTIONS
from .views import STYLE_NAMES

RESTORED = "_url_state_restored"  # session_state flag: the link was read once, on the session's first run
TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


@dataclass(frozen=True)
class Synced:
    """A widget key kept in the URL.

    With `choices` (a select box's or radio's options, of any type), the URL holds a choice's text and
    the value is that choice. Otherwise the value's type is the default's: bool, int, float or str, with
    `low` and `high` bounding numbers, so that a hand-edited link cannot make a slider fail. A list
    default is a multiselect: its items, comma-separated, each one of `choices`, `low` to `high` of them.
    `only_if` = (key, value): written only while that key, itself written, has that value, so that a
    hidden widget's setting (another reducer's parameters, say) stays out of the link.
    """

    default: Any
    choices: tuple | None = None
    low: float | None = None
    high: float | None = None
    only_if: tuple[str, Any] | None = None

    def parse(self, text: str) -> Any:
        """The value a URL's text stands for; ValueError saying what is wrong otherwise."""
        if isinstance(self.default, list):
            items = [self._choice(item) for item in dict.fromkeys(text.split(",")) if item]  # no repeats
            self._check_range(len(items), " items")
            return items
        if self.choices is not None:
            return self._choice(text)
        value = _parse_scalar(type(self.default), text)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            self._check_range(value)
        return value

    def text(self, value: Any) -> str:
        """The URL's text for a value; parse() reads it back."""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float):
            return _number(value)
        if isinstance(value, (list, tuple)):
            return ",".join(self.text(item) for item in value)
        return str(value)

    def _choice(self, text: str) -> Any:
        for choice in self.choices or ():
            if self.text(choice) == text:
                return choice
        raise ValueError(f"must be one of {', '.join(self.text(c) for c in self.choices or ())}")

    def _check_range(self, number: float, unit: str = "") -> None:
        low, high = self.low, self.high
        if (low is None or number >= low) and (high is None or number <= high):
            return
        if high is None:
            raise ValueError(f"must be at least {_number(low)}{unit}")
        if low is None:
            raise ValueError(f"must be at most {_number(high)}{unit}")
        raise ValueError(f"must be between {_number(low)} and {_number(high)}{unit}")


SYNCED: dict[str, Synced] = {}


def register(key: str, default: Any, *, choices: Sequence | None = None, low: float | None = None,
             high: float | None = None, only_if: tuple[str, Any] | None = None) -> None:
    """Keep the widget with this key in the URL (see Synced); `default` must be the widget's own default."""
    SYNCED[key] = Synced(list(default) if isinstance(default, tuple) else default,
                         None if choices is None else tuple(choices), low, high, only_if)


def restore() -> list[str]:
    """On a session's first run, copy the link's settings into st.session_state; call it before any widget.

    Returns what was ignored ("key=value (why)"): unknown keys and values that do not parse or are out
    of range, after one st.warning naming them. Later runs return [] and touch nothing.
    """
    if st.session_state.get(RESTORED):
        return []
    st.session_state[RESTORED] = True
    ignored = []
    for key in st.query_params:
        text = st.query_params[key]  # the last one, if the key is repeated
        spec = SYNCED.get(key)
        if spec is None:
            ignored.append(f"{key}={text} (not a setting)")
            continue
        try:
            st.session_state[key] = spec.parse(text)
        except ValueError as error:
            ignored.append(f"{key}={text} ({error})")
    if ignored:
        st.warning("Some settings in the link were ignored: " + "; ".join(ignored) + ".")
    return ignored


def publish() -> None:
    """Write the settings that differ from their defaults to the URL, and drop every other parameter;
    call it at the end of a run. The URL changes (one message to the browser) only when they differ."""
    wanted = current_params()
    if st.query_params.to_dict() != wanted:
        st.query_params.from_dict(wanted)


def current_params() -> dict[str, str]:
    """The query parameters of this view: each synced key that applies and differs from its default."""
    state = st.session_state
    return {key: spec.text(state[key]) for key, spec in SYNCED.items()
            if key in state and _applies(key) and state[key] != spec.default}


def share_link_view() -> None:
    """The link to this view, ready to copy."""
    query = urlencode(current_params())
    link = (st.context.url or "") + (f"?{query}" if query else "")
    st.code(link or "(the default view: the app's address with nothing after it)", language=None, wrap_lines=True)
    st.caption("The browser's address bar holds the same link and follows every change. Only settings that "
               "differ from the defaults are in it. An uploaded video cannot travel in a link: the link opens on "
               "Upload, and the video has to be uploaded again.")


def _applies(key: str) -> bool:
    """Whether the key's widget shows, as far as the URL knows: its only_if holds, all the way up."""
    condition = SYNCED[key].only_if
    if condition is None:
        return True
    other, value = condition
    return _applies(other) and st.session_state.get(other, SYNCED[other].default) == value


def _parse_scalar(kind: type, text: str) -> Any:
    if kind is bool:
        if text.lower() not in TRUE + FALSE:
            raise ValueError("must be true or false")
        return text.lower() in TRUE
    if kind is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError("must be a whole number") from None
    if kind is float:
        try:
            number = float(text)
        except ValueError:
            raise ValueError("must be a number") from None
        if not math.isfinite(number):
            raise ValueError("must be a finite number")
        return number
    return text


def _number(value: float) -> str:
    return format(value, ".10g")


def _register_app_widgets() -> None:
    """The widgets of the sidebar, the token view and the comparison, with their defaults in code."""
    register("source", "Sample", choices=["Sample", "Upload", "Local path"])
    register("sample", next(iter(SAMPLES)), choices=SAMPLES, only_if=("source", "Sample"))
    register("path", "", only_if=("source", "Local path"))
    register("frames", 16, choices=range(2, 33, 2))
    register("stride", 4, low=1, high=64)
    register("start", 0.0, low=0.0)
    register("size", NATIVE_SIZE, choices=SIZE_OPTIONS)
    register("model_size", DEMO if DEMO_WEIGHTS.exists() else "small", choices=[DEMO, *SIZES])
    register("weights", "")
    register("device", "auto", choices=["auto", "cpu", "cuda"])
    register("timing_runs", 1, low=1, high=10)
    register("reducer", "rlt", choices=REDUCERS)
    for name, reducer in REDUCERS.items():
        for p in reducer.params:
            register(f"param.{name}.{p.name}", p.default, choices=p.choices, low=p.low, high=p.high,
                     only_if=("reducer", name))
    register("saliency_on", True)
    register("fusion", FUSIONS[0], choices=FUSIONS, only_if=("saliency_on", True))
    register("discard", 0.0, low=0.0, high=0.95, only_if=("saliency_on", True))
    register("layer", 0, low=0)  # the token view lowers a layer past the network's last
    register("style", "value", choices=STYLE_NAMES)  # the first overlay for RLT; other reducers start elsewhere
    heat = [name for name, info in VALUES.items() if info.kind == "heat"]
    register("heat_value", "rollout", choices=heat, only_if=("style", "heat"))
    register("every_frame", False)
    register("focus_on", False)
    for axis in ("focus_t", "focus_h", "focus_w"):
        register(axis, 0, low=0, only_if=("focus_on", True))  # a cell past the grid falls back to 0
    register("compare_on", False)
    compared = [name for name in REDUCERS if name != "none"]
    register("compare_reducers", DEFAULT_REDUCERS, choices=compared, low=0, high=MAX_REDUCERS,
             only_if=("compare_on", True))
    register("compare_budget", 0.5, low=0.1, high=1.0, only_if=("compare_on", True))
    register("compare_layer", 0, low=0, only_if=("compare_on", True))
    register("compare_frame", 1, low=0, only_if=("compare_on", True))  # the first tubelet's last frame
    register("compare_style", "heat", choices=STYLE_NAMES, only_if=("compare_on", True))
    register("compare_heat_value", "rollout", choices=heat, only_if=("compare_style", "heat"))


_register_app_widgets()
