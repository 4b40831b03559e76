"""The dashboard in a real browser: every page, date/region changes, a run with progress and cancel,
exports, bad input, evaluation, A/B comparison and the trajectory player.

The server (see conftest) runs on the 3-day synthetic dataset with two tiny untrained diffusion
checkpoints; runs use the 40 x 40-cell ``sample`` region and a few steps, so each takes a second.
Screenshots of every page land in tests/ui/screenshots/.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import xarray as xr
from playwright.sync_api import expect
from test_era5_sample import ERA5  # the sample's rainy hour and its region

T0 = "2021-01-02T06:00"
FAST = f"time={T0}&region=sample&members=3&steps=3&seed=0"
expect.set_options(timeout=60_000)  # a busy 2-core machine: runs and renders take seconds
PAGES = {0: "downscale", 1: "pseudo_precipitation", 2: "gibbs", 3: "evaluation", 4: "checkpoints", 5: "data"}
#: what each page shows once built (besides its maps) and a phrase of its "How to read this" (pages/help.py)
SHOWS = {0: "Run ensemble", 1: "ks_normal", 2: "spurious drizzle (fraction of cells)", 3: "Evaluate range",
         4: "Registered checkpoints", 5: None}
HELP_PHRASE = {0: "should look like rain", 1: "spike at 0", 2: "Where ringing comes from.",
               3: "a U means too little spread", 4: "settles on large shapes first",
               5: "Rain falls mostly where VIMD is negative"}
#: the two datasets every page is opened on: (URL query, screenshot prefix)
DATASETS = {"synthetic": (FAST, ""), "era5-sample": (ERA5, "era5_")}


@pytest.fixture
def tall(page):
    """A tall viewport: the template scrolls inside, so a screenshot shows what fits."""
    page.set_viewport_size({"width": 1600, "height": 2000})
    page.set_default_timeout(90_000)
    return page


def _open(page, url, query=""):
    page.goto(f"{url}?{query}" if query else url)
    expect(page.get_by_text("Device:").first).to_be_visible()


def _select(page, option_text):
    """The native <select> (inside Bokeh's shadow DOM) that offers ``option_text``."""
    return page.locator(f"select:has(option:text-is('{option_text}'))").first


def _status(page):
    return page.get_by_text(re.compile(r"Showing \d{4}-\d\d-\d\d \d\d:\d\d UTC")).first


@pytest.mark.parametrize("index", sorted(PAGES))
@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_each_page_loads(tall, app_url, screenshot_dir, dataset, index):
    """Every page on both datasets: built, its maps drawn on open, its "How to read this" collapsed
    and opening on click, no page error. Screenshots: PAGE.png and era5_PAGE.png."""
    page = tall
    query, prefix = DATASETS[dataset]
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    _open(page, app_url, f"{query}&page={index}")
    expect(page.get_by_text("could not be built")).to_have_count(0)
    if index in (0, 1, 2, 5):  # pages with maps at once
        expect(page.locator("canvas").first).to_be_visible()
    if SHOWS[index]:
        expect(page.get_by_text(SHOWS[index]).first).to_be_visible()
    if index == 4:
        expect(page.get_by_role("cell", name="tiny-diffusion-b", exact=True)).to_be_visible()
    expect(page.get_by_text(HELP_PHRASE[index]).first).to_be_hidden()  # collapsed
    page.get_by_text("How to read this").first.click()
    expect(page.get_by_text(HELP_PHRASE[index]).first).to_be_visible()
    page.wait_for_timeout(2500)  # let Bokeh paint every plot
    page.screenshot(path=str(screenshot_dir / f"{prefix}{PAGES[index]}.png"))
    assert not errors


def test_date_and_region_change_update_panels(tall, app_url):
    page = tall
    _open(page, app_url, FAST)
    expect(page.get_by_text("Showing 2021-01-02 06:00 UTC")).to_be_visible()
    page.get_by_role("button", name="hour ▶").click()
    expect(page.get_by_text("Showing 2021-01-02 07:00 UTC")).to_be_visible()
    expect(page).to_have_url(re.compile(r"time=2021-01-02T07(%3A|:)00"))
    _select(page, "Alps").select_option(label="Alps")
    expect(page.get_by_text(re.compile(r"Showing 2021-01-02 07:00 UTC · Alps"))).to_be_visible()
    expect(page).to_have_url(re.compile(r"region=alps"))
    # the PP page shares hour and region; its table counts the region's cells (alps: 20 x 48)
    page.locator(".bk-tab", has_text="Pseudo-precipitation").click()
    expect(page.get_by_text("960", exact=True)).to_be_visible()
    page.get_by_role("button", name="◀ hour").first.click()
    expect(page).to_have_url(re.compile(r"time=2021-01-02T06(%3A|:)00"))
    expect(page.get_by_text("960", exact=True)).to_be_visible()
    # a shared link reproduces the view
    _open(page, page.url.replace("page=1", "page=0"))
    expect(page.get_by_text(re.compile(r"Showing 2021-01-02 06:00 UTC · Alps"))).to_be_visible()


def test_drawing_a_box_on_the_overview_sets_a_custom_region(tall, app_url):
    page = tall
    _open(page, app_url, FAST)
    expect(page.locator("canvas").first).to_be_visible()
    page.wait_for_timeout(1500)
    # the overview map sits in the control column, left of the maps
    boxes = [c.bounding_box() for c in page.locator("canvas").all()]
    bb = next(b for b in boxes if b and b["x"] < 320 and b["width"] > 100)
    x0, y0 = bb["x"] + bb["width"] * 0.45, bb["y"] + bb["height"] * 0.45
    page.mouse.move(x0, y0)
    page.mouse.down()
    for k in range(1, 21):  # box-select is the active drag
        page.mouse.move(x0 + 2 * k, y0 + 1.5 * k)
    page.mouse.up()
    expect(page).to_have_url(re.compile(r"region=custom.*&box=[\d.%C-]+"))
    expect(page.get_by_text(re.compile(r"Showing 2021-01-02 06:00 UTC · [\d.]+-[\d.]+N, [\d.]+-[\d.]+E"))).to_be_visible()


def test_too_small_region_shows_its_message(tall, app_url):
    page = tall
    _open(page, app_url, FAST)
    box = page.get_by_placeholder("e.g. 44,48,5,12").first
    box.fill("45,46,5,6")
    box.press("Enter")
    expect(page.get_by_text(re.compile(r"covers only 1 x 1 coarse cells")).first).to_be_visible()
    expect(page.get_by_text("Showing the last valid view")).to_be_visible()
    box.fill("44,48,5,12")
    box.press("Enter")
    expect(page.get_by_text(re.compile(r"Showing .* UTC · 44-48N, 5-12E"))).to_be_visible()
    expect(page.get_by_text("covers only")).to_have_count(0)
    # a bad box straight from a link: the message, and a valid view meanwhile
    _open(page, app_url, f"{FAST}&region=custom&box=70,80,0,10")
    expect(page.get_by_text(re.compile("lies outside the domain")).first).to_be_visible()
    expect(page.get_by_text(re.compile(r"Showing 2021-01-02 06:00 UTC over Sample box \(45-55N, 0-10E\) of Synthetic Europe instead")).first).to_be_visible()


def test_page_settings_travel_in_the_url(tall, app_url):
    """The Gibbs controls come from a link and go back into it; bad values say what is allowed."""
    page = tall
    _open(page, app_url, f"{FAST}&page=2&cutoff=300&method=fft")
    expect(page.get_by_text("Cutoff wavelength (km): 300").first).to_be_visible()
    expect(page.get_by_role("button", name="FFT (periodic)")).to_have_class(re.compile("bk-active"))
    page.get_by_role("button", name="DCT (no wrap-around)").click()
    expect(page).to_have_url(re.compile(r"method=dct"))
    expect(page).to_have_url(re.compile(r"cutoff=300"))
    _open(page, app_url, f"{FAST}&page=2&cutoff=5&method=nonsense")
    expect(page.get_by_text(re.compile(r"cutoff_km=5 \(allowed: 60 to 1500\)")).first).to_be_visible()
    expect(page.get_by_text(re.compile(r"method='nonsense' \(allowed: dct, fft\)")).first).to_be_visible()
    expect(page.get_by_text("spurious drizzle (fraction of cells)").first).to_be_visible()  # and the page still works


def test_run_progress_cancel_then_export(tall, app_url, tmp_path, screenshot_dir):
    page = tall
    # a long run (16 members x 200 steps, about a second a step here): visible progress, then cancelled
    _open(page, app_url, f"time={T0}&region=scandinavia&members=16&steps=200&seed=1")
    page.get_by_role("button", name="Run ensemble").click()
    expect(page.get_by_text(re.compile(r"Running: step \d+/200"))).to_be_visible()
    page.get_by_role("button", name="Cancel").first.click()
    expect(page.get_by_text("The run was cancelled").first).to_be_visible(timeout=60_000)
    # the queue is free again: a small run completes and draws
    _open(page, app_url, FAST)
    page.get_by_role("button", name="Run ensemble").click()
    expect(page.get_by_text(re.compile(r"computed in [\d.]+ s"))).to_be_visible()
    expect(page.get_by_text("ensemble (fair CRPS)")).to_be_visible()
    page.wait_for_timeout(2000)
    page.screenshot(path=str(screenshot_dir / "downscale_ensemble.png"))
    # the slider moves the big map through the members (and into the URL)
    page.locator(".noUi-handle").first.focus()
    page.keyboard.press("ArrowRight")
    expect(page.get_by_text("Member on the big map: 1")).to_be_visible()
    expect(page).to_have_url(re.compile(r"member=1"))
    # export: netCDF of the ensemble, PNG of the view
    with page.expect_download() as dl:
        page.get_by_role("button", name="netCDF").click()
    path = tmp_path / dl.value.suggested_filename
    dl.value.save_as(path)
    assert path.suffix == ".nc" and "sample" in path.name
    with xr.open_dataset(path) as ds:
        assert ds["tp"].dims == ("member", "time", "lat", "lon")
        assert ds.sizes["member"] == 3 and ds.sizes["lat"] == 40 and ds.sizes["lon"] == 40
        assert {"tp_truth", "tp_bicubic", "pp", "member_seed"} <= set(ds.variables)
        assert ds.attrs["steps"] == 3 and "tiny-diffusion" in ds.attrs["diffusion_checkpoint"]
        assert np.isfinite(ds["tp"].values).all() and (ds["tp"].values >= 0).all()
    with page.expect_download() as dl:
        page.get_by_role("button", name="PNG").click()
    png = tmp_path / "view.png"
    dl.value.save_as(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cached_result_returns_at_once(tall, app_url):
    page = tall
    _open(page, app_url, FAST.replace("seed=0", "seed=5"))
    page.get_by_role("button", name="Run ensemble").click()
    expect(page.get_by_text(re.compile(r"computed in"))).to_be_visible()
    page.get_by_role("button", name="hour ▶").click()
    expect(page.get_by_text("no ensemble for these settings yet")).to_be_visible()
    page.get_by_role("button", name="◀ hour").click()
    expect(page.get_by_text(re.compile(r"computed in"))).to_be_visible()  # from the cache, no run


def test_evaluation_runs_and_loads_a_directory(tall, app_url, ui_dir, screenshot_dir):
    from ppviz.views import evaluation as E

    page = tall
    _open(page, app_url, f"{FAST}&page=3")
    page.get_by_role("textbox", name=re.compile("Start")).fill("2021-01-02T06:00")
    page.get_by_role("textbox", name=re.compile("End")).fill("2021-01-02T07:00")
    page.get_by_role("textbox", name=re.compile("End")).press("Enter")
    page.get_by_role("button", name="Evaluate range").click()
    expect(page.get_by_text("Source: computed")).to_be_visible()
    expect(page.get_by_text(re.compile(r"^n_times: 2 · n_members: 4"))).to_be_visible()
    expect(page.get_by_text(re.compile(r"Gibbs \(truth, cutoff 222 km\)"))).to_be_visible()
    page.wait_for_timeout(2000)
    page.screenshot(path=str(screenshot_dir / "evaluation_results.png"))
    # an evaluation directory on the server, in the layout of `ppviz evaluate` (NaN as null)
    res = E.EvaluationResult(
        scalars={"crps": {"ensemble": 0.1, "bicubic": 0.2, "nearest": float("nan")},
                 "crps_skill_score": {"bicubic": 0.5}, "n_times": 1},
        curves=xr.Dataset({"rank_histogram": ("rank", np.array([3, 1, 1, 3]))}, coords={"rank": np.arange(4)}),
        settings={"note": "written by the test"})
    E.save_evaluation(res, ui_dir / "evaluation-1")
    page.get_by_role("textbox", name=re.compile("Directory")).fill(str(ui_dir / "evaluation-1"))
    page.get_by_role("textbox", name=re.compile("Directory")).press("Enter")
    page.get_by_role("button", name="Load directory").click()
    expect(page.get_by_text(re.compile("Loaded .*evaluation-1"))).to_be_visible()
    expect(page.get_by_text("written by the test")).to_be_visible()
    # outside the allowed roots: refused with a message
    page.get_by_role("textbox", name=re.compile("Directory")).fill("/etc")
    page.get_by_role("textbox", name=re.compile("Directory")).press("Enter")
    page.get_by_role("button", name="Load directory").click()
    expect(page.get_by_text(re.compile("outside the directories evaluations may be read from"))).to_be_visible()


def test_checkpoint_cards_ab_comparison_and_trajectory(tall, app_url, screenshot_dir):
    page = tall
    page.set_viewport_size({"width": 1600, "height": 3000})
    _open(page, app_url, f"{FAST}&page=4")
    expect(page.get_by_role("cell", name="tiny untrained U-Net for the browser tests (tiny-diffusion)")).to_be_visible()
    _select(page, "tiny-diffusion-b").select_option(label="tiny-diffusion-b")  # the model card picker
    expect(page.get_by_role("heading", name="tiny-diffusion-b")).to_be_visible()
    # A is preselected (tiny-diffusion); B: the second picker offering the "tiny-diffusion-b: ..." label
    b = page.locator("select:has(option:text-matches('^tiny-diffusion-b: '))").nth(1)
    label = next(t for t in b.locator("option").all_inner_texts() if t.startswith("tiny-diffusion-b: "))
    b.select_option(label=label)
    page.get_by_role("button", name="Compare A and B").click()
    expect(page.get_by_text("CRPS of each ensemble")).to_be_visible()
    # the score table's rows (the training-curve legend names A and B too)
    expect(page.get_by_role("cell", name="A: tiny-diffusion", exact=True)).to_be_visible()
    expect(page.get_by_role("cell", name="B: tiny-diffusion-b", exact=True)).to_be_visible()
    expect(page.get_by_text("Denoising step")).to_be_visible()
    page.get_by_role("button", name="B", exact=True).click()  # B's trajectory
    page.wait_for_timeout(2500)
    page.screenshot(path=str(screenshot_dir / "checkpoints_ab.png"))
