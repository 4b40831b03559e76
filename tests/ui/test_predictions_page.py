"""The Evaluation page scores a predictions file made elsewhere (a CF ``pr`` ensemble with its truth)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import xarray as xr
from playwright.sync_api import expect

expect.set_options(timeout=60_000)


def test_evaluation_page_scores_a_predictions_file(page, app_url, ui_dir, screenshot_dir):
    rng = np.random.default_rng(3)
    lat, lon = np.arange(44.0, 46.01, 0.25), np.arange(6.0, 8.76, 0.25)
    times = pd.date_range("2021-01-01", periods=3, freq="D").values
    pr = rng.gamma(0.6, 1.5, size=(3, 3, lat.size, lon.size)) / 3600.0
    path = ui_dir / "cordex-like.nc"
    attrs = {"units": "kg m-2 s-1", "standard_name": "precipitation_flux"}
    xr.Dataset({"pr": (("realization", "time", "lat", "lon"), pr, attrs),
                "pr_truth": (("time", "lat", "lon"), pr.mean(0) * 1.1, attrs)},
               coords={"realization": [1, 2, 3], "time": times, "lat": lat, "lon": lon}).to_netcdf(path)
    page.set_viewport_size({"width": 1600, "height": 2000})
    page.set_default_timeout(90_000)
    page.goto(f"{app_url}?page=3")
    expect(page.get_by_text("Device:").first).to_be_visible()
    box = page.get_by_role("textbox", name=re.compile("Predictions file"))
    box.fill(str(path))
    box.press("Enter")
    page.get_by_role("button", name="Score predictions").click()
    expect(page.get_by_text(re.compile(r"Scoring pr \(daily, 3 members x 3 times\) against pr_truth"))).to_be_visible()
    expect(page.get_by_text(re.compile(r"Source: .*cordex-like\.nc"))).to_be_visible()
    expect(page.get_by_text(re.compile(r"time_step: daily"))).to_be_visible()
    page.screenshot(path=str(screenshot_dir / "evaluation_predictions.png"))
    # a file outside the allowed roots is refused in the page
    box.fill("/etc/hosts")
    box.press("Enter")
    page.get_by_role("button", name="Score predictions").click()
    expect(page.get_by_text(re.compile("outside the directories evaluations may be read from"))).to_be_visible()
