"""The data page loads in a real browser, draws both maps with coastlines, on the synthetic data."""

from playwright.sync_api import expect


def test_data_page_draws_maps(page, app_url, screenshot_dir):
    page.set_default_timeout(120_000)
    page.goto(app_url + "?page=5")  # the Data tab (Downscale is the landing page)
    # Bokeh draws into canvases inside shadow roots; Playwright locators pierce them.
    expect(page.locator("canvas").first).to_be_visible()
    page.wait_for_function("() => true")  # let the document settle
    expect(page.get_by_text("Natural Earth 50m").first).to_be_visible()
    expect(page.get_by_text("Data: synthetic").first).to_be_visible()
    assert page.locator("canvas").count() >= 2
    page.wait_for_timeout(1500)
    page.screenshot(path=str(screenshot_dir / "data_page.png"), full_page=True)
