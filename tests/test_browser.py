"""The app in a real browser: `streamlit run app.py` on localhost, driven by Playwright in headless chromium.

Skipped, with the reason, when the Playwright package or a chromium is missing. Every session
sets the tiny model on 8 frames of 112 px through the sidebar, as a user would.
"""

from __future__ import annotations

import io
import json
import zipfile
from urllib.parse import urlencode

import numpy as np
import pytest

from explorer.models.reducers import REDUCERS
from explorer.video import SAMPLES, sample_path
from tests.browser import CHROMIUM_ARGS, TIMEOUT_MS, App, Server, burst, configure_small_run, find_chromium, new_context
from tests.conftest import write_video
from tests.test_scan_views import LONG, make_windows, write_scan

pytestmark = pytest.mark.browser

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the browser tests need the playwright package (pip install -r requirements-dev.txt)"
)
CHROMIUM = find_chromium()
if CHROMIUM is None:
    pytest.skip(
        "the browser tests need Debian's chromium (apt-get install chromium); none found", allow_module_level=True
    )

sync_api.expect.set_options(timeout=TIMEOUT_MS)
expect = sync_api.expect
RLT = REDUCERS["rlt"].title


# Module-scoped: the server (torch and the cached models) and chromium are gone before the rest of the suite runs.
@pytest.fixture(scope="module")
def server(tmp_path_factory):
    served = Server(tmp_path_factory.mktemp("streamlit") / "streamlit.log")
    try:
        served.wait_ready()
        yield served
    finally:
        served.stop()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def open_app(browser, server, tmp_path):
    """Factory: a new browser session (its own context, so its own Streamlit session) set to the small run.

    What the server and the pages logged during the test is printed at teardown: pytest shows it when the
    test fails.
    """
    start = server.log_size()
    contexts, apps = [], []

    def make() -> App:
        context = new_context(browser, accept_downloads=True)
        contexts.append(context)
        app = App(context.new_page())
        apps.append(app)
        configure_small_run(app, server.url)
        return app

    yield make
    for i, app in enumerate(apps):
        shot = tmp_path / f"session{i}.png"
        try:
            app.page.screenshot(path=shot, full_page=True)
            print(f"--- browser session {i}: the page at the end: {shot}")
        except Exception as error:  # a closed or crashed page: say so, keep the rest of the report
            print(f"--- browser session {i}: no screenshot ({error})")
        print(f"--- browser session {i}: console ---\n" + "\n".join(app.console[-50:]))
        if app.retries:
            print(f"--- browser session {i}: retried ---\n" + "\n".join(app.retries))
        if app.errors:
            print(f"--- browser session {i}: JavaScript errors ---\n" + "\n".join(app.errors))
    print("--- streamlit log during the test ---\n" + server.log(start)[-20_000:])
    for context in contexts:
        context.close()


def test_the_app_opens_with_the_overlay_and_the_charts(open_app):
    app = open_app()
    expect(app.page.get_by_role("heading", name="Token Reduction Explorer")).to_be_visible()
    assert app.page.title() == "Token Reduction Explorer"
    assert app.metric("Tokens per layer").endswith("/ 196")  # 4 x 7 x 7 tubelets: 8 frames of 112 px
    assert app.image_caption().endswith("One frame per tubelet (its last).")
    assert app.image_caption().startswith(f"{app.metric('Tokens per layer').split(' / ')[0]} tokens at layer 0")
    app.assert_image_drawn()
    charts = app.main.locator('[data-testid="stPlotlyChart"]')
    expect(charts).to_have_count(3)  # tokens per layer, run lengths, and accuracy against budget (in an expander)
    for i in range(2):
        chart = charts.nth(i)
        chart.scroll_into_view_if_needed()
        expect(chart.locator(".main-svg").first).to_be_visible()
        expect(chart.locator("g.trace").first).to_be_attached()  # plotly drew at least one series
        box = chart.bounding_box()
        assert box and box["width"] > 200 and box["height"] > 150, box
    lines = charts.nth(0).locator(".scatterlayer g.trace")
    assert lines.count() >= 2, "tokens per layer: the dense and the RLT line"
    assert charts.nth(1).locator(".barlayer path").count() > 0, "run lengths: bars"
    app.assert_clean()


def test_an_uploaded_video_is_analyzed(open_app, tmp_path):
    # A still picture for 40 frames: RLT keeps the first tubelet only, 49 of 196 tokens.
    y, x = np.mgrid[0:96, 0:128]
    picture = np.stack([x * 2, y * 2, (x + y) % 64 * 4], axis=-1).astype(np.uint8)
    picture[20:60, 30:80] = (250, 40, 40)
    write_video(tmp_path / "still.mp4", [picture] * 40, fps=24)
    app = open_app()
    before = app.image_pixels()
    assert app.metric("Tokens per layer") != "49 / 196"
    app.radio("source", "Upload")
    app.page.get_by_text("Choose a video in the sidebar").wait_for()
    app.wait_idle()
    app.widget("upload").locator('input[type="file"]').set_input_files(tmp_path / "still.mp4")
    summary = app.main.locator('[data-testid="stExpander"] summary').first
    expect(summary).to_contain_text("still.mp4: 128x96, 24 fps, 1.7 s long; 8 frames sampled")
    app.wait_idle()
    app.assert_clean("after the upload")
    assert not app.error_messages()
    assert app.metric("Tokens per layer") == "49 / 196"
    after = app.assert_image_drawn("for the upload")
    assert before.shape != after.shape or np.abs(before.astype(int) - after).mean() > 5, "the overlay did not change"


def test_every_reducer_runs_and_draws(open_app):
    app = open_app()
    for name, reducer in REDUCERS.items():
        app.select("reducer", reducer.title)
        expect(app.main.get_by_text(reducer.title, exact=True)).to_be_visible()  # the explanation's heading
        app.wait_idle()
        app.assert_clean(f"with {name}")
        assert not app.error_messages(), (name, app.error_messages())
        expect(app.widget("reducer").get_by_role("combobox")).to_have_value(reducer.title)
        app.assert_image_drawn(f"with {name}")
        assert " tokens at layer 0" in app.image_caption(), (name, app.image_caption())
        if name == "mvit":
            expect(app.main.get_by_role("heading", name="Grids per layer")).to_be_visible()  # MViT's own table


def test_moving_the_layer_redraws_the_overlay(open_app):
    app = open_app()
    app.select("reducer", REDUCERS["tome"].title)  # merging: the clusters differ from layer to layer
    expect(app.main.get_by_text(REDUCERS["tome"].title, exact=True)).to_be_visible()
    app.wait_idle()
    app.radio("style", "Clusters")
    expect(app.widget("style").locator('[data-testid="stRadioOption"][data-selected="true"]')).to_have_text("Clusters")
    expect(app.main.get_by_text("A cluster is the set of cells")).to_be_visible()
    app.wait_idle()
    first, first_src = app.assert_image_drawn("at layer 0"), app.image.get_attribute("src")
    assert app.slider_keys("layer", "ArrowRight") == "1"
    expect(app.main.locator('[data-testid="stImageCaption"]').first).to_contain_text("tokens at layer 1.")
    app.wait_idle()
    assert app.slider_keys("layer", "End") == "12"
    expect(app.main.locator('[data-testid="stImageCaption"]').first).to_contain_text("tokens at layer 12.")
    app.wait_idle()
    app.assert_clean("after moving the layer")
    last = app.assert_image_drawn("at layer 12")
    assert app.image.get_attribute("src") != first_src
    assert first.shape == last.shape and np.abs(first.astype(int) - last).mean() > 2, "the clusters look the same"
    assert int(app.image_caption().split(" tokens")[0]) < 196, "ToMe merged tokens by layer 12"


def test_the_trace_export_downloads_as_a_zip(open_app, tmp_path):
    app = open_app()
    tokens = int(app.metric("Tokens per layer").split(" / ")[0])
    button = app.widget("download_trace").get_by_role("button", name="Trace (summary.json + trace.npz)")
    with app.page.expect_download() as download:
        button.click()
    path = tmp_path / "trace.zip"
    download.value.save_as(path)
    assert download.value.suggested_filename == "trace.zip"
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        assert sorted(archive.namelist()) == ["summary.json", "trace.npz"]
        summary = json.loads(archive.read("summary.json"))
        arrays = np.load(io.BytesIO(archive.read("trace.npz")))
        owner = arrays["owner"]
    assert summary["reducer"] == "rlt" and summary["grid"] == [4, 7, 7] and summary["input_tokens"] == 196
    assert round(float(np.mean(summary["tokens_per_layer"]))) == tokens
    assert owner.shape == (13, 4, 7, 7) and list(arrays["tokens_per_layer"]) == summary["tokens_per_layer"]
    app.wait_idle()
    app.assert_clean("after the download")


def change_and_move(changer, reducer: str, mover, key: str, layer: int) -> None:
    """One session picks another reducer while the other moves its layer; both finish their reruns."""
    changer.select("reducer", reducer)
    assert mover.slider_keys("layer", key) == str(layer)
    expect(changer.main.get_by_text(reducer, exact=True)).to_be_visible()
    expect(mover.main.locator('[data-testid="stImageCaption"]').first).to_contain_text(f"tokens at layer {layer}.")
    changer.wait_idle()
    mover.wait_idle()


def test_two_sessions_keep_their_own_state(open_app):
    a, b = open_app(), open_app()
    tome = REDUCERS["tome"].title
    # At the same time: a changes the reducer, b moves the layer.
    change_and_move(a, tome, b, "End", 12)
    for app, reducer, layer in ((a, tome, 0), (b, RLT, 12)):
        expect(app.widget("reducer").get_by_role("combobox")).to_have_value(reducer)
        expect(app.main.get_by_text(reducer, exact=True)).to_be_visible()
        assert f"tokens at layer {layer}." in app.image_caption()
        app.assert_clean()
    expect(b.main.get_by_text(tome, exact=True)).to_have_count(0)
    expect(a.main.get_by_text(RLT, exact=True)).to_have_count(0)
    # Both rerun again: neither choice leaks into the other session.
    sta = REDUCERS["sta"].title
    change_and_move(b, sta, a, "ArrowRight", 1)
    expect(a.widget("reducer").get_by_role("combobox")).to_have_value(tome)
    expect(a.main.get_by_text(tome, exact=True)).to_be_visible()
    expect(b.widget("reducer").get_by_role("combobox")).to_have_value(sta)
    assert "tokens at layer 12." in b.image_caption()


def test_the_scan_page_shows_a_scan_folder_and_opens_a_window_in_the_explorer(browser, server, tmp_path):
    video = str(sample_path(next(iter(SAMPLES))))
    folder = write_scan(tmp_path / "scan", make_windows().replace({"video": {LONG: video}}))
    context = new_context(browser)
    app = App(context.new_page())
    start = server.log_size()
    try:
        app.page.goto(f"{server.url}/scan?{urlencode({'folder': str(folder)})}")
        expect(app.page.get_by_role("heading", name="Scan: long videos and datasets")).to_be_visible()
        app.widget("scan_link_open").get_by_role("button").click()  # a link alone opens no folder
        charts = app.main.locator('[data-testid="stPlotlyChart"]')
        expect(charts).to_have_count(3)  # accuracy against tokens, kept tokens, the video along time
        app.wait_idle()
        for i in range(3):
            charts.nth(i).scroll_into_view_if_needed()
            expect(charts.nth(i).locator("g.trace").first).to_be_attached()
        assert app.main.locator('[data-testid="stDataFrame"]').count() >= 4  # summary, classes, changed, window
        app.assert_clean("on the scan page")
        assert not app.error_messages()
        link = app.main.locator('[data-testid="stLinkButton"] a').first
        expect(link).to_contain_text("Open window 0")
        href = link.evaluate("a => a.href")  # resolved against /scan: the explorer's page at the root
        assert href.startswith(f"{server.url}/?source=Local+path&path="), href
        app.page.goto(href)
        expect(app.main.get_by_text("This link asks to open files on this machine")).to_be_visible()
        expect(app.widget("path").locator("input")).to_have_value("")
        app.widget("link_paths_open").get_by_role("button").click()
        expect(app.widget("path").locator("input")).to_have_value(video)
        expect(app.widget("reducer").get_by_role("combobox")).to_have_value(RLT)
        app.assert_image_drawn("in the explorer opened from the scan")
        played = played_bytes(app)
        assert played != open(video, "rb").read() and played[4:8] == b"ftyp", "the player plays the decoded clip"
        app.wait_idle()
        app.assert_clean("in the explorer opened from the scan")
        assert not app.error_messages()
        # The link opened a new session. Through the navigation to Scan and back: each page keeps its settings.
        nav = app.page.locator('[data-testid="stSidebarNav"]')
        nav.get_by_role("link", name="Scan").click()
        field = app.widget("scan_folder").locator("input")
        expect(field).to_have_value("")
        app.wait_idle()
        field.fill(str(folder))
        field.press("Enter")
        expect(charts).to_have_count(3)
        app.wait_idle()
        nav.get_by_role("link", name="Explorer").click()
        expect(app.widget("path").locator("input")).to_have_value(video)
        expect(app.widget("reducer").get_by_role("combobox")).to_have_value(RLT)
        app.assert_image_drawn("back in the explorer")
        app.wait_idle()
        nav.get_by_role("link", name="Scan").click()
        expect(field).to_have_value(str(folder))
        expect(charts).to_have_count(3)
        app.wait_idle()
        app.assert_clean("back on the scan page")
    finally:
        print("--- browser console ---\n" + "\n".join(app.console[-50:]))
        print("--- streamlit log during the test ---\n" + server.log(start)[-20_000:])
        context.close()


def played_bytes(app: App) -> bytes:
    """What the clip's player (in its expander) is served."""
    app.main.locator('[data-testid="stExpander"] summary', has_text="frames sampled").first.click()
    player = app.main.locator("video").first
    expect(player).to_be_attached()
    return app.page.request.get(player.evaluate("v => v.currentSrc || v.src")).body()


def test_a_shared_server_opens_no_path_a_link_names_and_says_why(browser, tmp_path):
    """TOKEN_EXPLORER_SHARED=1: Local path, Weights and Scan are not offered, whatever the link says."""
    served = Server(tmp_path / "shared.log", env={"TOKEN_EXPLORER_SHARED": "1"})
    context = new_context(browser)
    app = App(context.new_page())
    secret = tmp_path / "secret.mp4"
    write_video(secret, np.zeros((8, 64, 64, 3), np.uint8), fps=8)
    try:
        served.wait_ready()
        query = {"source": "Local path", "path": str(secret), "weights": str(tmp_path / "model.pth")}
        app.page.goto(f"{served.url}/?{urlencode(query)}")
        warning = app.main.locator('[data-testid="stAlertContentWarning"]').first
        expect(warning).to_contain_text("Some settings in the link were ignored")
        for part in (
            "source=Local path (not offered on this shared server)",
            f"path={secret} (this shared server opens no paths on it)",
            "(this shared server opens no paths on it)",
        ):
            expect(warning).to_contain_text(part)
        expect(app.widget("source").locator('[data-testid="stRadioOption"]')).to_have_count(2)
        expect(app.widget("path")).to_have_count(0)
        expect(app.widget("weights")).to_have_count(0)
        app.assert_image_drawn("on the shared server's default view")  # the bundled sample instead
        app.wait_idle()
        assert played_bytes(app) != secret.read_bytes()
        app.assert_clean("on the shared server")
        app.page.goto(f"{served.url}/scan?{urlencode({'folder': str(tmp_path)})}")
        expect(app.main.get_by_text("a shared server does not offer them")).to_be_visible()
        app.wait_idle()
        expect(app.main.locator('[data-testid="stPlotlyChart"]')).to_have_count(0)
        assert str(tmp_path) not in app.main.inner_text()
        app.assert_clean("on the shared server's scan page")
    finally:
        print("--- streamlit log ---\n" + served.log()[-20_000:])
        served.stop()
        context.close()


def test_the_learn_page_goes_through_every_step_and_draws_each_view(browser, server):
    """/learn from a teacher's link to step 1, then Next through every step: each draws its view with no exception,
    the page's link follows the step, and the step's explorer link leads to the explorer at the app's root."""
    import re

    from explorer.ui.learn_steps import STEPS

    context = new_context(browser)
    app = App(context.new_page())
    start = server.log_size()
    try:
        app.page.goto(f"{server.url}/learn?step=1")
        for number, step in enumerate(STEPS, start=1):
            expect(app.main.get_by_role("heading", name=f"{number}. {step.title}")).to_be_visible()
            app.wait_idle()
            app.assert_image_drawn(f"at step {number}")
            app.assert_clean(f"at step {number}")
            assert not app.error_messages(), (number, app.error_messages())
            expect(app.page).to_have_url(re.compile(rf"/learn\?step={number}$"))
            href = app.main.locator('[data-testid="stLinkButton"] a').first.evaluate("a => a.href")
            assert href.startswith(f"{server.url}/?source=Sample&"), href
            if number < len(STEPS):
                app.widget("learn_next").get_by_role("button").click()
        expect(app.main.locator('[data-testid="stPlotlyChart"] g.trace').first).to_be_attached()  # side by side
    finally:
        print("--- browser console ---\n" + "\n".join(app.console[-50:]))
        print("--- streamlit log during the test ---\n" + server.log(start)[-20_000:])
        context.close()


def test_a_class_opening_one_link_on_a_fresh_server_gets_eight_clean_pages(browser, tmp_path):
    """A burst of 8 sessions on a server that has run nothing (the classroom case): plotly's lazy pandas import
    raced between the sessions' threads and broke 2 or 3 of them; now every page draws its overlay, shows no
    exception, and says where its run stands (the server starting, its place in the line, or its run under way)
    unless its overlay came first (tests/test_class_server.py checks the places of a burst whose runs must wait)."""
    fresh = Server(tmp_path / "fresh.log")
    contexts = []
    try:
        fresh.wait_ready()
        visits, contexts = burst(browser, [fresh.url] * 8)
        for visit in visits:
            assert not visit.exceptions and not visit.script_errors, (visit.exceptions, visit.script_errors)
            assert visit.overlay_ms is not None and visit.place_ms is not None and visit.place_ms <= visit.overlay_ms
        said = {visit.place_text.split(":")[0] for visit in visits if visit.place_text}  # none if no run had to wait
        print(f"first words: {said}; overlays after {sorted(round(v.overlay_ms) for v in visits)} ms")
    finally:
        for context in contexts:
            context.close()
        print("--- streamlit log ---\n" + fresh.log()[-20_000:])
        fresh.stop()
