"""An ONNX checkpoint (``ppviz export onnx`` of a tiny model) runs in the Downscale page."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

T0 = "2021-01-02T06:00"
expect.set_options(timeout=60_000)

@pytest.fixture(scope="module")
def onnx_url(app_server, tmp_path_factory):
    from ppviz.diffusion.onnx_export import export_checkpoint
    from ppviz.diffusion.tiny import save_tiny_diffusion

    root = tmp_path_factory.mktemp("onnx-ui")
    src = save_tiny_diffusion(root / "src", "tiny-torch-src", perturb=0.02)
    export_checkpoint(src, root / "checkpoints" / "tiny-onnx")
    with app_server({"PPVIZ_CHECKPOINTS": str(root / "checkpoints"), "PPVIZ_DEFAULT_DIFFUSION": "tiny-onnx"},
                    "panel-serve-onnx.log") as url:
        yield url


def test_an_onnx_checkpoint_runs_in_the_downscale_page(page, onnx_url, screenshot_dir, finite_pixels):
    page.set_viewport_size({"width": 1600, "height": 2000})
    page.set_default_timeout(90_000)
    page.goto(f"{onnx_url}?time={T0}&region=sample&members=2&steps=3&seed=0&ckpt=tiny-onnx")
    expect(page.get_by_text("Device:").first).to_be_visible()
    page.get_by_role("button", name="Run ensemble").click()
    status = page.get_by_text(re.compile(r"computed in [\d.]+ s")).first
    expect(status).to_be_visible()
    page.wait_for_timeout(1500)
    page.screenshot(path=str(screenshot_dir / "downscale_onnx.png"))
    assert "tiny-onnx" in status.text_content(), status.text_content()
    maps = finite_pixels(page, r"^member \d")
    drawn = {t: n for t, n in maps.items() if "not in this run" not in t}
    # both members drawn; the PP map has every cell of the 40 x 40 sample region, TP maps leave dry cells blank
    assert {"member 0", "member 1", "member 0 PP"} <= set(drawn) and drawn["member 0 PP"] == 40 * 40, maps
    assert all(n > 0 for n in drawn.values()), maps
