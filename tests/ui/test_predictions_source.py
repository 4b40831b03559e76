"""A predictions file as the Downscale page's source and as B in the Checkpoints page's A/B, in a browser.

The file is a CorrDiff generate.py layout (groups, 2-D lat/lon, no units on the group variables)
below the server's evaluation root, hourly at 2021-01-03 21..23 on 16 x 16 points of the data's
0.25 deg grid (4 x 4 whole 1 deg cells inside the ``sample`` region, where the synthetic data rain
then), its truth the data's, its members the truth plus 0, 0.5, 1, 1.5 mm/h: the fair CRPS of the
file's members is 1/3 on both pages.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from urllib.parse import quote

import pandas as pd
from playwright.sync_api import expect

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_external_source import WET_HOURS, WET_LAT, WET_LON, data_truth, write_corrdiff  # noqa: E402

expect.set_options(timeout=60_000)
TITLES = """() => {
  const out = [];
  for (const doc of window.Bokeh.documents)
    for (const m of doc.all_models)
      if (m.constructor.__name__ === 'Title' && m.text) out.push(m.text);
  return out;
}"""


def _url(app_url, **params):
    q = {"time": "2021-01-03T22:00", "region": "sample", **params}
    return app_url + "?" + "&".join(f"{k}={quote(str(v), safe='')}" for k, v in q.items())


def _titles(page) -> set[str]:
    return set(page.evaluate(TITLES))


def test_predictions_as_downscale_source_and_as_b_of_the_ab(page, app_url, ui_dir, screenshot_dir):
    path = ui_dir / "corrdiff-source.nc"
    write_corrdiff(path, WET_HOURS, WET_LAT, WET_LON, truth=data_truth())
    page.set_viewport_size({"width": 1600, "height": 2000})
    page.set_default_timeout(90_000)
    page.goto(_url(app_url, page=0, source="predictions", src_file=path, src_units="kg m-2 s-1"))
    expect(page.get_by_text("Device:").first).to_be_visible()
    status = page.get_by_text(re.compile(r"Showing 2021-01-03 22:00 UTC \(hourly\) · predictions grid")).first
    expect(status).to_be_visible()
    expect(page.get_by_text(re.compile(r"predictions corrdiff-source\.nc: prediction/precip, 4 members")).first
           ).to_be_visible()
    expect(page.get_by_role("cell", name="0.3333")).to_be_visible()  # fair CRPS of the offsets
    page.wait_for_timeout(2500)  # let Bokeh paint every plot
    titles = _titles(page)
    for want in ("coarse input TP: not in this source", "coarse PP, the condition: not in this source",
                 "member 0 PP: not in this source", "member 0 TP (slider)", "ensemble mean TP (4 members)",
                 "truth TP (0.25°)", "member 3", "Power spectra of TP (region, selected members)"):
        assert want in titles, (want, sorted(titles))
    # another of the file's times, from its picker; it travels in the URL
    page.locator("select:has(option:text-is('2021-01-03 23:00'))").first.select_option(label="2021-01-03 23:00")
    expect(page.get_by_text(re.compile(r"Showing 2021-01-03 23:00 UTC \(hourly\)")).first).to_be_visible()
    expect(page).to_have_url(re.compile(r"src_time=2021-01-03T23(%3A|:)00"))
    page.wait_for_timeout(1500)
    page.screenshot(path=str(screenshot_dir / "downscale_predictions.png"))
    # a file outside the roots: a message, the last view stays
    box = page.get_by_role("textbox", name=re.compile("Predictions file on the server"))
    box.fill("/etc/hosts")
    box.press("Enter")
    expect(page.get_by_text(re.compile("/etc/hosts is outside the directories evaluations may be read from")).first
           ).to_be_visible()
    expect(page.get_by_text(re.compile("Showing the last valid view")).first).to_be_visible()

    # A/B: the tiny checkpoint on the predictions' hour and cells against the file's members
    page.set_viewport_size({"width": 1600, "height": 2600})
    page.goto(_url(app_url, page=4, ab_source="predictions", ab_pred=path, ab_units="kg m-2 s-1",
                   ab_members=2, ab_steps=3))
    expect(page.get_by_text("CRPS of each ensemble").first).to_be_visible()
    expect(page.get_by_role("cell", name="A: tiny-diffusion", exact=True)).to_be_visible()
    expect(page.get_by_role("cell", name="B: corrdiff-source.nc: prediction/precip", exact=True)).to_be_visible()
    expect(page.get_by_text(re.compile(r"B: the 4 members of corrdiff-source\.nc")).first).to_be_visible()
    expect(page.get_by_role("cell", name="0.3333")).to_be_visible()  # B against the data's truth = the file's
    expect(page.get_by_text(re.compile(r"own truth differs from it by at most (0|\d(\.\d+)?e-0[5-9]) mm/h")).first
           ).to_be_visible()
    page.wait_for_timeout(2500)
    titles = _titles(page)
    assert "B member 0: corrdiff-source.nc: prediction/precip" in titles and "Power spectra" in titles, sorted(titles)
    page.screenshot(path=str(screenshot_dir / "checkpoints_ab_predictions.png"))
    # an hour the file does not hold: a message, the page keeps serving
    page.goto(_url(app_url, page=4, ab_source="predictions", ab_pred=path, ab_units="kg m-2 s-1",
                   ab_members=2, ab_steps=3, time="2021-01-02T07:00"))
    expect(page.get_by_text(re.compile(r"time 2021-01-02 07:00 is not in .*corrdiff-source\.nc")).first).to_be_visible()
    expect(page.get_by_text("Registered checkpoints").first).to_be_visible()
