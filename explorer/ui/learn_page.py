"""The Learn page (/learn): a guided tour of token reduction in video transformers, one step at a time.

st.navigation runs this file as a script (explorer/ui/page.py). Each step (learn_steps.py) has a short text, one
live view on a bundled sample through the demo model with the one control that matters, a question answered by
looking, its answer on demand, and a link that opens the same view in the explorer. The step is in the page's own
link as ?step=N, so a teacher's link opens that step; a bad ?step is named and step 1 shown. The page's widgets are
its own (keys "learn*"), outside the explorer's link (widgets.py).
"""

from __future__ import annotations

from urllib.parse import urlencode

import streamlit as st

from explorer.errors import USER_ERRORS
from explorer.ui.learn_steps import STEPS, Lab, Lesson, Setting, Step, tour_lab

EXPLORER_URL = "./"  # the explorer is the app's default page: from /learn, "./?reducer=…" opens it
STEP = "learn_step"  # the step chooser's key


def main() -> None:
    st.set_page_config(page_title="Learn · Token Reduction Explorer", page_icon="🎓", layout="wide")
    st.title("Learn: token reduction, step by step")
    number = step_ui()
    try:
        lab = prepare()
    except USER_ERRORS as error:
        st.error(str(error))
        publish(number)
        return
    st.caption(intro(lab))
    step_view(number, STEPS[number - 1], lab)
    navigation_ui(number)
    publish(number)


def step_ui() -> int:
    """The step chooser. On the page's first run in a session it starts at the link's ?step."""
    if STEP not in st.session_state:
        st.session_state[STEP] = step_from_link(st.query_params.get("step"))
    return st.selectbox(
        "Step",
        range(1, len(STEPS) + 1),
        format_func=lambda n: f"{n}. {STEPS[n - 1].title}",
        key=STEP,
        persist_state="session",
    )


def step_from_link(text: str | None) -> int:
    """The step a link asks for; step 1, after a warning naming it, when it is not one."""
    if text is None:
        return 1
    if text.strip().isdigit() and 1 <= int(text) <= len(STEPS):
        return int(text)
    st.warning(f"The link asks for step={text}, but the steps are 1 to {len(STEPS)}: here is step 1.")
    return 1


def prepare() -> Lab:
    """The tour's clip and model (learn_steps.tour_lab), cached."""
    with st.spinner("Preparing the clip and the demo model…"):
        return tour_lab()


def intro(lab: Lab) -> str:
    cfg = lab.model.cfg
    return (
        f"{len(STEPS)} steps, each with one live view of the bundled sample *{lab.sample}* ({lab.clip.num_frames} "
        f"frames at {lab.clip.frames.shape[1]} px) through the demo model (a ViT of {cfg.depth} blocks, "
        f"{cfg.embed_dim} wide, trained on generated clips of a shape moving), one control, a question to answer by "
        "looking, and a link that opens the same view in the explorer, where every setting is yours."
    )


def step_view(number: int, step: Step, lab: Lab) -> None:
    """The step's text, question and link beside its control and view (drawn first: the answer needs its run)."""
    st.header(f"{number}. {step.title}")
    text, view = st.columns([2, 3], gap="large")
    with view:
        try:
            with st.spinner("Running the model…"):
                lesson = step.show(lab)
        except USER_ERRORS as error:
            st.error(str(error))
            lesson = None
    with text:
        st.markdown(step.text)
        if step.departure:
            st.caption(f"**Where the explorer departs from the paper.** {step.departure}")
        st.markdown(f"**Question.** {step.question}")
        if lesson is not None:
            lesson_view(lesson)


def lesson_view(lesson: Lesson) -> None:
    with st.expander("Answer"):
        st.markdown(lesson.answer)
    st.link_button(
        "Open this view in the explorer",
        explorer_link(lesson.settings),
        help="The full explorer with this step's clip, reducer, setting, layer and overlay; change anything there.",
    )


def explorer_link(settings: list[Setting]) -> str:
    """The explorer's address with these settings, written as its widgets write them (Widget.text)."""
    return EXPLORER_URL + "?" + urlencode({widget.key: widget.text(value) for widget, value in settings})


def navigation_ui(number: int) -> None:
    back, forward = st.columns(2)
    if number > 1:
        back.button(
            f"← Step {number - 1}", key="learn_back", help=STEPS[number - 2].title, on_click=go_to, args=(number - 1,)
        )
    if number < len(STEPS):
        forward.button(
            f"Next: step {number + 1} →",
            key="learn_next",
            help=STEPS[number].title,
            on_click=go_to,
            args=(number + 1,),
            type="primary",
        )


def go_to(number: int) -> None:
    """A button's callback: runs before the chooser is drawn, so it shows the new step at once."""
    st.session_state[STEP] = number


def publish(number: int) -> None:
    """The page's link names its step, and nothing else."""
    wanted = {"step": str(number)}
    if st.query_params.to_dict() != wanted:
        st.query_params.from_dict(wanted)


if __name__ == "__main__":
    main()
