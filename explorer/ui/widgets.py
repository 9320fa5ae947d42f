"""Widgets declared once, and the app's state in the URL derived from those declarations.

A Widget says all there is to say about one widget: its key, label, default, choices or range, help, and
when it shows (`only_if`). widget() declares one, beside the code that draws it (sidebar.py, views.py,
compare.py), and registers it in WIDGETS; Widget.draw() draws it. The link reads the same declarations:

- restore_from_link() runs first in every run; on a session's first run it copies the link's query
  parameters into st.session_state, where the widgets with those keys pick them up. A parameter that
  names no widget, does not parse or is out of range is left out and named in one st.warning.
- publish_to_link() runs last in every run: it writes each shown widget whose value differs from its default
  back to the URL, so a default view has a bare link and a hidden widget's setting stays out of it.

Why not Streamlit's own bind="query-params" (1.67): it drops a bad value without a word (a debug log),
leaves an unknown parameter in the link, keeps a hidden widget's parameter until the widget is drawn once,
and a change reaches the URL from the browser only, so st.query_params on the server, and with it the
"Link to this view" box, never sees it.

An uploaded video cannot travel in a link (its bytes live in this session only): a link to an upload
reopens on "Upload" with no file. A setting that names a path on the server (`server_path`: a video, a
checkpoint) is never opened from a link alone: on one's own machine the page asks first, and a shared server
(explorer/deployment.py) refuses it, as it refuses the choices it does not offer (`shared_choices`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import streamlit as st

from explorer.deployment import SHARED_REFUSAL, shared

RESTORED = "_url_state_restored"  # session_state flag: the link was read once, on the session's first run
PENDING = "_link_paths"  # session_state: server paths a link named, waiting for the user to open them
DRAWN_DEFAULTS = "_widget_defaults"  # session_state: key -> the default each widget was drawn with this run
TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
CHOOSERS = ("radio", "selectbox", "select_slider")  # one of the choices


@dataclass(frozen=True)
class Widget:
    """One widget, declared once; it is drawn from this, and kept in the URL from this.

    With `choices` (options of any type), the URL holds a choice's text and the value is that choice.
    Otherwise the value's type is the default's: bool, int, float or str, with `low` and `high` bounding
    numbers, so that a hand-edited link cannot make a slider fail. A list default is a multiselect: its
    items, comma-separated, each one of `choices`, `low` to `high` of them. `only_if` = (key, value): the
    widget shows only while that key's widget, itself shown, has that value. `server_path`: the value names a
    path on the server, so a link cannot set it without the user's say. `shared_choices`: the choices a
    shared server offers, when not all of them.

    `kind` names the Streamlit function; left empty it follows from the default: a list is a multiselect,
    choices a selectbox, a bool a checkbox, a str a text input (a text area when the default has several
    lines), an int a number input, a float a slider. `extra`: more keyword arguments for that function.
    """

    key: str
    label: str
    default: Any
    choices: tuple | None = None
    low: float | None = None
    high: float | None = None
    step: float | None = None
    help: str | None = None
    only_if: tuple[str, Any] | None = None
    kind: str = ""
    format_func: Callable[[Any], str] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    server_path: bool = False
    shared_choices: tuple | None = None

    @property
    def offered(self) -> tuple | None:
        """The choices this server offers."""
        return self.shared_choices if shared() and self.shared_choices is not None else self.choices

    @property
    def function(self) -> str:
        """The name of the Streamlit function that draws the widget."""
        if self.kind:
            return self.kind
        if isinstance(self.default, list):
            return "multiselect"
        if self.choices is not None:
            return "selectbox"
        if isinstance(self.default, bool):
            return "checkbox"
        if isinstance(self.default, str):
            return "text_area" if "\n" in self.default else "text_input"
        return "number_input" if isinstance(self.default, int) else "slider"

    def draw(
        self,
        where: Any = st,
        *,
        choices: Sequence | None = None,
        high: float | None = None,
        format_func: Callable[[Any], str] | None = None,
    ) -> Any:
        """Draw the widget in `where` (st, a column, a container) and return its value; draw nothing and
        return None while it does not show (see only_if).

        `choices`, `high` and `format_func` are what this run offers when the data decides it (a trace's
        overlays, its number of layers): a value kept from before that this run does not offer goes back
        to the default, or to the nearest bound. The default is the declared one when offered, else the
        first choice.
        """
        if not shown(self.key):
            return None
        state, kind = st.session_state, self.function
        # "session": the value outlives a run that does not draw the widget (another page's, say)
        args = dict(key=self.key, help=self.help, persist_state="session", **self.extra)
        if format_func or self.format_func:
            args["format_func"] = format_func or self.format_func
        if kind in CHOOSERS:
            options = list(self.offered if choices is None else choices)
            if self.key in state and state[self.key] not in options:
                del state[self.key]
            default = self.default if self.default in options else options[0]
            _drawn(self.key, default)
            if kind == "select_slider":
                return where.select_slider(self.label, options, value=default, **args)
            return getattr(where, kind)(self.label, options, index=options.index(default), **args)
        _drawn(self.key, self.default)
        if kind == "multiselect":
            return where.multiselect(
                self.label,
                list(self.choices),
                default=self.default,
                max_selections=None if self.high is None else int(self.high),
                **args,
            )
        if kind in ("slider", "number_input"):
            number = type(self.default)
            high = self.high if high is None else high
            low, high = (None if bound is None else number(bound) for bound in (self.low, high))
            if self.key in state:
                kept = state[self.key]
                fitted = min(max(kept, -math.inf if low is None else low), math.inf if high is None else high)
                if fitted != kept:
                    state[self.key] = fitted
            return getattr(where, kind)(
                self.label, min_value=low, max_value=high, value=self.default, step=self.step, **args
            )
        return getattr(where, kind)(self.label, value=self.default, **args)  # text, checkbox, toggle

    def parse(self, text: str) -> Any:
        """The value a URL's text stands for; ValueError saying what is wrong otherwise."""
        if isinstance(self.default, list):
            items = [self._choice(item) for item in dict.fromkeys(text.split(",")) if item]  # no repeats
            self._check_range(len(items), " items")
            return items
        if self.choices is not None:
            return self._choice(text)
        if self.server_path and shared():
            raise ValueError(SHARED_REFUSAL)
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
                if choice not in (self.offered or ()):
                    raise ValueError("not offered on this shared server")
                return choice
        raise ValueError(f"must be one of {', '.join(self.text(c) for c in self.offered or ())}")

    def _check_range(self, number: float, unit: str = "") -> None:
        low, high = self.low, self.high
        if (low is None or number >= low) and (high is None or number <= high):
            return
        if high is None:
            raise ValueError(f"must be at least {_number(low)}{unit}")
        if low is None:
            raise ValueError(f"must be at most {_number(high)}{unit}")
        raise ValueError(f"must be between {_number(low)} and {_number(high)}{unit}")


WIDGETS: dict[str, Widget] = {}  # every declared widget by key: the settings a link may carry


def widget(key: str, label: str, default: Any, *, choices: Sequence | None = None, **declaration: Any) -> Widget:
    """Declare a widget (see Widget) and register it, so that the link keeps it; returns the declaration."""
    declared = Widget(
        key,
        label,
        list(default) if isinstance(default, tuple) else default,
        None if choices is None else tuple(choices),
        **declaration,
    )
    WIDGETS[key] = declared
    return declared


def shown(key: str) -> bool:
    """Whether the key's widget shows: its only_if holds, all the way up."""
    condition = WIDGETS[key].only_if
    if condition is None:
        return True
    other, value = condition
    return shown(other) and st.session_state.get(other, WIDGETS[other].default) == value


def restore_from_link() -> list[str]:
    """Call it first in every run, before any widget. On a session's first run, copy the link's settings into
    st.session_state.

    Returns what was ignored ("key=value (why)"): unknown keys and values that do not parse or are out
    of range, after one st.warning naming them. Later runs return [] and leave the settings alone.
    """
    st.session_state[DRAWN_DEFAULTS] = {}
    if st.session_state.get(RESTORED):
        _ask_to_open_link_paths()
        return []
    st.session_state[RESTORED] = True
    ignored, pending = [], {}
    for key in st.query_params:
        text = st.query_params[key]  # the last one, if the key is repeated
        declared = WIDGETS.get(key)
        if declared is None:
            ignored.append(f"{key}={text} (not a setting)")
            continue
        try:
            value = declared.parse(text)
        except ValueError as error:
            ignored.append(f"{key}={text} ({error})")
            continue
        if declared.server_path and value:
            pending[key] = value
        else:
            st.session_state[key] = value
    if ignored:
        st.warning("Some settings in the link were ignored: " + "; ".join(ignored) + ".")
    pending = {key: value for key, value in pending.items() if shown(key)}  # a hidden field opens nothing
    if pending:
        st.session_state[PENDING] = pending
    _ask_to_open_link_paths()
    return ignored


def _ask_to_open_link_paths() -> None:
    """While a link's server paths wait, say which and offer to open or ignore them. Until then nothing reads
    them: a link alone cannot make the server open a file, or tell whether one exists. Runs before any widget
    is drawn, so a click settles them in the same run."""
    pending = st.session_state.get(PENDING)
    if not pending:
        return
    slot = st.empty()
    box = slot.container(border=True)
    box.warning("This link asks to open files on this machine. Nothing is opened until you say so:")
    for key, value in pending.items():
        box.caption(WIDGETS[key].label)
        box.code(value, language=None, wrap_lines=True)
    left, right = box.columns(2)
    opened = left.button("Open them", key="link_paths_open", type="primary")
    if opened or right.button("Ignore them", key="link_paths_ignore"):
        del st.session_state[PENDING]
        if opened:
            st.session_state.update(pending)
        slot.empty()


def publish_to_link() -> None:
    """Write the settings that differ from their defaults to the URL, and drop every other parameter;
    call it at the end of a run. The URL changes (one message to the browser) only when they differ."""
    pending = st.session_state.get(PENDING, {})
    wanted = current_params() | {key: WIDGETS[key].text(value) for key, value in pending.items()}
    if st.query_params.to_dict() != wanted:
        st.query_params.from_dict(wanted)


def current_params() -> dict[str, str]:
    """The query parameters of this view: each shown widget whose value differs from the default it was drawn
    with this run (its declared one when it was not drawn)."""
    state = st.session_state
    drawn = state.get(DRAWN_DEFAULTS, {})
    return {
        key: declared.text(state[key])
        for key, declared in WIDGETS.items()
        if key in state and shown(key) and state[key] != drawn.get(key, declared.default)
    }


def share_link_view() -> None:
    """The link to this view, ready to copy."""
    query = urlencode(current_params())
    link = (st.context.url or "") + (f"?{query}" if query else "")
    st.code(link or "(the default view: the app's address with nothing after it)", language=None, wrap_lines=True)
    st.caption(
        "The browser's address bar holds the same link and follows every change. Only settings that "
        "differ from the defaults are in it. An uploaded video cannot travel in a link: the link opens on "
        "Upload, and the video has to be uploaded again."
    )


def _drawn(key: str, default: Any) -> None:
    """Remember the default a widget was drawn with this run: the one a link leaves out."""
    st.session_state.setdefault(DRAWN_DEFAULTS, {})[key] = default


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
