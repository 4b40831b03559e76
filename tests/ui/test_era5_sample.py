"""The dashboard on the shipped ERA5 sample (``?data=era5-sample``): real data in the header with
its attribution, a run on it, the Data page on the shared hour and region, the dataset choice and
refused URL values. Every page on it (with its "How to read this"): tests/ui/test_dashboard.py::
test_each_page_loads. Screenshots: tests/ui/screenshots/era5_*.png.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

ERA5 = "data=era5-sample&time=2022-08-31T15:00&region=sample"
ATTRIBUTION = "real ERA5 (Generated using Copernicus Climate Change Service information)"
expect.set_options(timeout=60_000)


@pytest.fixture
def tall(page):
    page.set_viewport_size({"width": 1600, "height": 2000})
    page.set_default_timeout(90_000)
    return page


def _open(page, url, query):
    page.goto(f"{url}?{query}")
    expect(page.get_by_text("Device:").first).to_be_visible()


def test_era5_sample_opens_real_era5_and_a_run_works(tall, app_url, screenshot_dir):
    page = tall
    _open(page, app_url, f"{ERA5}&members=2&steps=3&seed=0")
    expect(page.get_by_text(ATTRIBUTION).first).to_be_visible()
    expect(page.get_by_text("2020-01-01 to 2022-08-31 (48 hours)").first).to_be_visible()
    page.get_by_role("button", name="Run ensemble").click()
    expect(page.get_by_text(re.compile(r"computed in [\d.]+ s"))).to_be_visible()
    # the status names the data shown: the real sample's, not the synthetic stand-in's
    expect(page.get_by_text(re.compile(r"Showing 2022-08-31 15:00 UTC · Sample box \(45-55N, 0-10E\) of ERA5 sample "
                                       r"\(real, 2 days\) · ensemble of 2 members"))).to_be_visible()
    expect(page.get_by_text("ensemble (fair CRPS)")).to_be_visible()
    page.wait_for_timeout(2000)
    page.screenshot(path=str(screenshot_dir / "era5_downscale_ensemble.png"))


def test_data_page_follows_the_shared_time_and_region(tall, app_url):
    page = tall
    _open(page, app_url, f"{ERA5}&page=2")  # Gibbs page: step one hour on
    page.get_by_role("button", name="hour ▶").first.click()
    expect(page).to_have_url(re.compile(r"time=2022-08-31T16%3A00|time=2022-08-31T16:00"))
    page.locator(".bk-tab", has_text="Data").click()
    expect(page.locator("select:has(option:text-is('16:00'))").first).to_have_value("16:00")
    expect(page.get_by_text(ATTRIBUTION).first).to_be_visible()
    # a region chosen on the Data page is the other pages' region too
    page.locator("select:has(option:text-is('Benelux and Rhine'))").first.select_option(label="Benelux and Rhine")
    expect(page).to_have_url(re.compile(r"region=benelux-rhine"))
    page.locator(".bk-tab", has_text="Gibbs").click()
    expect(page.locator("select:has(option:text-is('Benelux and Rhine'))").first).to_have_value("Benelux and Rhine")


def test_regions_outside_the_data_and_bad_data_are_refused_with_the_reason(tall, app_url):
    page = tall
    _open(page, app_url, "data=era5-sample&region=alps")
    expect(page.get_by_text(re.compile(r"Ignored URL settings.*region='alps' \(allowed: .*sample"))).to_be_visible()
    expect(page.locator("select:has(option:text-is('Alps'))")).to_have_count(0)  # not offered
    _open(page, app_url, "data=nope")
    expect(page.get_by_text("unknown dataset 'nope'; allowed: synthetic, era5-sample")).to_be_visible()
    # markup in the value stays text
    _open(page, app_url, "data=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E")
    expect(page.get_by_text("unknown dataset '<img src=x onerror=alert(1)>'")).to_be_visible()
    assert page.locator("img[src=x]").count() == 0


def test_choosing_the_dataset_in_the_header_reloads_on_it(tall, app_url):
    page = tall
    _open(page, app_url, "page=0")
    expect(page.get_by_text(ATTRIBUTION)).to_have_count(0)
    page.locator("select:has(option:text-is('Synthetic Europe'))").first.select_option(
        label="ERA5 sample (real, 2 days)")
    expect(page).to_have_url(re.compile(r"data=era5-sample"))
    expect(page.get_by_text(ATTRIBUTION).first).to_be_visible()
