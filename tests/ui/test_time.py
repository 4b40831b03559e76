"""Opening on something worth seeing, and time: the landing ensemble without a click, every page
drawn on open, play over a span of hours, a cell's time series and the span's accumulations.

Same server as test_dashboard.py (3-day synthetic data, tiny untrained checkpoints; the
``tiny-diffusion`` one ships a training log and a held-out evaluation, see conftest).
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

T0 = "2021-01-02T06:00"
FAST = f"time={T0}&region=sample&members=3&steps=3&seed=0"
PAGES = {0: "downscale", 1: "pseudo_precipitation", 2: "gibbs", 3: "evaluation", 4: "checkpoints"}

expect.set_options(timeout=60_000)


def _bench_js(name: str) -> str:
    """A JavaScript probe of benchmarks/bench_browser.py (one copy for the benchmark and the tests)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_browser.py"
    spec = importlib.util.spec_from_file_location("ppviz_bench_browser", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return getattr(mod, name)


# What the page's Bokeh documents hold: image sources with finite values, and the plot titles.
BOKEH_JS = _bench_js("IMAGES_JS")


def _open(page, url, query=""):
    page.goto(f"{url}?{query}" if query else url)
    expect(page.get_by_text("Device:").first).to_be_visible()


@pytest.fixture
def tall(page):
    page.set_viewport_size({"width": 1600, "height": 2200})
    page.set_default_timeout(90_000)
    return page


def _bokeh(page) -> dict:
    return page.evaluate(BOKEH_JS)


def _wait_titles(page, pattern: str, timeout_s: float = 60) -> list[str]:
    rx = re.compile(pattern)
    for _ in range(int(timeout_s * 4)):
        found = [t for t in _bokeh(page)["titles"] if rx.search(t)]
        if found:
            return found
        page.wait_for_timeout(250)
    raise AssertionError(f"no plot titled {pattern!r}; titles: {_bokeh(page)['titles']}")


def test_landing_opens_on_the_rainiest_hour_with_its_ensemble(tall, app_url, screenshot_dir):
    """No URL settings: the default region's rainiest hour, its ensemble drawn without a click."""
    from ppviz.views import cache as M
    from ppviz.views.highlights import default_view

    t, region = default_view(M.dataset())
    assert region == "sample"
    page = tall
    _open(page, app_url)
    expect(page.get_by_text(re.compile(rf"Showing {t:%Y-%m-%d %H:%M} UTC · Sample box \(45-55N, 0-10E\) of Synthetic Europe · "))).to_be_visible()
    expect(page.get_by_text(re.compile(r"ensemble of 4 members .* \(computed in [\d.]+ s\)"))).to_be_visible()
    titles = _wait_titles(page, r"^member 0 TP \(slider\)$")
    assert "ensemble mean TP (4 members)" in _bokeh(page)["titles"], titles
    page.wait_for_timeout(1500)
    # truth, coarse input, members, mean, spread, slots: all hold data (before a run, members are empty)
    assert _bokeh(page)["images"] >= 12
    page.screenshot(path=str(screenshot_dir / "landing_default.png"))


def test_a_link_still_wins_and_its_ensemble_is_computed_on_open(tall, app_url):
    page = tall
    _open(page, app_url, FAST.replace("seed=0", "seed=11"))
    expect(page.get_by_text(re.compile(r"Showing 2021-01-02 06:00 UTC · Sample box \(45-55N, 0-10E\) of Synthetic Europe · "))).to_be_visible()
    expect(page.get_by_text(re.compile(r"ensemble of 3 members x 3 Heun steps, seed 11, .*computed in"))).to_be_visible()
    _wait_titles(page, r"^member 2$")


@pytest.mark.parametrize("index", sorted(PAGES))
def test_every_page_draws_a_plot_on_open(tall, app_url, screenshot_dir, index):
    page = tall
    _open(page, app_url, f"{FAST}&page={index}")
    expect(page.locator("canvas").first).to_be_visible()
    if index == 3:  # the checkpoint's shipped held-out evaluation
        expect(page.get_by_text(re.compile(r"held-out evaluation shipped with the checkpoint"))).to_be_visible()
        expect(page.get_by_text("shipped with tiny-diffusion")).to_be_visible()
        _wait_titles(page, r"^Rank histogram")
    if index == 4:  # the A/B computed through the queue, with the training curves of A and B
        expect(page.get_by_text("CRPS of each ensemble")).to_be_visible()
        _wait_titles(page, r"^A ensemble mean$")
        _wait_titles(page, r"^Training curves \(training_log.jsonl\)$")
    page.wait_for_timeout(2000)
    page.screenshot(path=str(screenshot_dir / f"{PAGES[index]}_on_open.png"))


def test_play_advances_the_hour_and_a_click_draws_the_cell_series(tall, app_url, screenshot_dir):
    page = tall
    _open(page, app_url, f"{FAST}&span=4")
    expect(page.get_by_text(re.compile(r"computed in"))).to_be_visible()
    page.get_by_role("button", name="▶ Play").click()
    # the span is computed through the queue, then the hours follow each other (looping)
    for hour in ("07", "08", "09", "06"):
        expect(page.get_by_text(re.compile(rf"Showing 2021-01-02 {hour}:00 UTC .*computed in"))).to_be_visible()
    expect(page).to_have_url(re.compile(r"time=2021-01-02T0\d"))
    page.get_by_role("button", name="⏸ Pause").click()
    expect(page.get_by_role("button", name="▶ Play")).to_be_visible()
    # a click in the middle of the ensemble-mean map (4th map of the first row)
    boxes = [b for b in (c.bounding_box() for c in page.locator("canvas").all()) if b and b["x"] > 320
             and b["width"] > 150]
    first_row = sorted((b for b in boxes if abs(b["y"] - min(x["y"] for x in boxes)) < 30), key=lambda b: b["x"])
    mean_map = first_row[3]
    page.mouse.click(mean_map["x"] + mean_map["width"] * 0.45, mean_map["y"] + mean_map["height"] * 0.5)
    series = _wait_titles(page, r"^Cell [\d.]+N, [\d.]+E over 4 h$")
    assert len(series) == 1
    _wait_titles(page, r"^truth: 4 h total \(mm\)$")
    _wait_titles(page, r"^member 0: 4 h total \(mm\)$")
    page.set_viewport_size({"width": 1600, "height": 2800})
    page.wait_for_timeout(1500)
    page.screenshot(path=str(screenshot_dir / "downscale_time.png"))
    assert T0  # the span starts at the linked hour
