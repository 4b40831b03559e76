"""Browser tests: a real `panel serve app.py` on loopback, driven by Playwright in Debian's Chromium."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from ppviz.serve_probe import liveness_url, wait_for_liveness

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "tests" / "ui" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


def _chromium() -> str | None:
    for name in (os.environ.get("PPVIZ_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if name and Path(name).exists():
            return name
    return None


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/ui/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.ui)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    exe = _chromium()
    if exe is None:
        # a missing browser fails, never skips: `make test` installs it when it can
        pytest.fail("Debian's Chromium is not installed: sudo apt-get install -y chromium "
                    "(or set PPVIZ_CHROMIUM=/path/to/chromium; `make test` installs it when run as root)")
    return {**browser_type_launch_args, "executable_path": exe, "headless": True, "args": CHROMIUM_ARGS}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tiny_diffusion(root: Path, name: str, seed: int, perturb: float = 0.0) -> None:
    """An untrained tiny downscaler (:mod:`ppviz.diffusion.tiny`): a run takes a fraction of a
    second on a small region; ``perturb`` makes a model that samples different fields."""
    from ppviz.diffusion.tiny import save_tiny_diffusion

    save_tiny_diffusion(root, name, seed=seed, perturb=perturb,
                        summary=f"tiny untrained U-Net for the browser tests ({name})")


@pytest.fixture(scope="session")
def ui_dir(tmp_path_factory) -> Path:
    """Scratch directory of the browser tests: tiny checkpoints, evaluation directories."""
    root = tmp_path_factory.mktemp("ppviz-ui")
    (root / "checkpoints").mkdir()
    _tiny_diffusion(root / "checkpoints", "tiny-diffusion", 0)
    _tiny_diffusion(root / "checkpoints", "tiny-diffusion-b", 1, perturb=0.02)
    _ship_log_and_evaluation(root / "checkpoints" / "tiny-diffusion")
    return root


def _ship_log_and_evaluation(ckpt: Path) -> None:
    """What a shipped checkpoint carries besides its weights: a training log (loss falling from
    1.0 to 0.25) and a held-out evaluation directory (CRPS and a rank histogram)."""
    import json

    import numpy as np
    import xarray as xr

    from ppviz.views import evaluation as E

    (ckpt / "training_log.jsonl").write_text("".join(json.dumps({"step": s, "loss": 1.0 / (1 + k), "lr": 1e-3})
                                                     + "\n" for k, s in enumerate((10, 20, 30, 40))))
    E.save_evaluation(E.EvaluationResult(
        scalars={"crps": {"ensemble": 0.1, "bicubic": 0.2}, "crps_skill_score": {"bicubic": 0.5}, "n_times": 3},
        curves=xr.Dataset({"rank_histogram": ("rank", np.array([2, 3, 3, 2]))}, coords={"rank": np.arange(4)}),
        settings={"note": "shipped with tiny-diffusion"}), ckpt / E.SHIPPED_DIR)


@contextlib.contextmanager
def serve_app(env_extra: dict, log_name: str):
    """``panel serve app.py`` (with ``ppviz serve``'s security-header setup) on a free loopback
    port with ``env_extra`` on top of this environment; yields the app's URL, stops it afterwards."""
    port = _free_port()
    log = open(Path(os.environ["PPVIZ_DATA_DIR"]) / log_name, "w")
    env = dict(os.environ, PPVIZ_MAX_JOBS="1", PPVIZ_DEVICE="cpu",
               BOKEH_RESOURCES="server", **env_extra)  # offline: no CDN, as ppviz serve does
    proc = subprocess.Popen(
        [sys.executable, "-m", "panel", "serve", str(REPO / "app.py"), "--port", str(port),
         "--setup", str(REPO / "ppviz" / "serve_setup.py"),
         "--address", "127.0.0.1", "--allow-websocket-origin", f"127.0.0.1:{port}", "--liveness"],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    url = f"http://127.0.0.1:{port}/app"
    try:
        wait_for_liveness(proc, liveness_url(port), timeout=180, log=log.name, interval=0.5)
        # one plain GET builds a first session (imports, dataset, the start-up run), so that a
        # browser test does not spend its wait on the server's cold start
        urllib.request.urlopen(url, timeout=300).read()
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="session")
def app_server():
    """:func:`serve_app`, for tests that need a server of their own (other registry or roots)."""
    return serve_app


@pytest.fixture(scope="session")
def app_url(ui_dir):
    """Serve app.py on a free loopback port for the whole session; stop it afterwards.

    The app sees two tiny untrained diffusion checkpoints (``tiny-diffusion`` preselected, so
    the tests stay fast whatever is in ``pretrained/``) and may load evaluations from ``ui_dir``.
    """
    with serve_app({"PPVIZ_CHECKPOINTS": str(ui_dir / "checkpoints"), "PPVIZ_DEFAULT_DIFFUSION": "tiny-diffusion",
                    "PPVIZ_EVAL_ROOTS": str(ui_dir)}, "panel-serve.log") as url:
        yield url


#: ``{title: finite pixels}`` of the first image of each map whose title matches the regex ``pattern``
FINITE_PIXELS_JS = """(pattern) => {
  const re = new RegExp(pattern), out = {};
  for (const doc of Bokeh.documents) for (const m of doc.all_models) {
    const t = m.title && m.title.text;
    if (typeof t !== "string" || !re.test(t) || !m.renderers) continue;
    for (const r of m.renderers) {
      const img = r.data_source && r.data_source.data && r.data_source.data.image;
      if (!img || !img.length) continue;
      let finite = 0;
      for (const v of img[0]) if (Number.isFinite(v)) finite++;
      out[t] = finite;
    }
  }
  return out;
}"""


@pytest.fixture(scope="session")
def finite_pixels():
    """``finite_pixels(page, pattern)``: the finite pixels of the drawn maps whose title matches
    ``pattern`` (a JavaScript regex), by title."""
    return lambda page, pattern: page.evaluate(FINITE_PIXELS_JS, pattern)


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
