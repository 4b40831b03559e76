"""Benchmark: the dashboard in a real browser (headless Debian Chromium via Playwright).

Two figures, each the median over repeats:

1. **Open to first map**: from ``page.goto(URL)`` to the first Bokeh map canvas with painted
   pixels (the server already running; the very first session after start-up, which also loads
   the models, is reported separately as "cold").
2. **Date change to all panels updated, cached results**: ensembles are first run (through the
   UI) for a few consecutive hours; then, from the first of them, the "hour ▶" button is clicked
   and the clock stops when the page says ``Showing <new hour> UTC`` with the cached ensemble
   (``computed in``) and the browser has painted twice more (two ``requestAnimationFrame``s): the
   server sends the new image data of every map, the spectra, the QQ panel and the status text
   in one patch, so the text appears with the plots.
3. The same date change **timed inside the page** (``performance.now()`` from the button's click
   to two frames after the new status text is in the DOM), without Playwright's own round trips;
   it also counts the Bokeh data sources the change replaced, to show every panel got new data.

4. **URL to landing ensemble drawn**: the bare URL (the default region's rainiest hour, the run
   warmed at server start by ``ppviz/serve_setup.py``, as ``ppviz serve`` does) until the status
   says ``computed in`` and every member map holds data; and the same for a link whose run is not
   cached (a new seed: computed on open through the queue).
5. **Play frame rate**: Play over a span of ``--hours`` hours (computed first through the queue),
   then the hours shown per second, counted in the page from the status text, at the page's
   default 3 frames/s and asking for 6.
6. **Time-series click to drawn**: a click on the ensemble-mean map until the cell's time-series
   plot (title ``Cell ...``) is in the page and painted.

The server runs ``app.py`` with ``panel serve`` on a loopback port, on a short synthetic dataset
(``PPVIZ_SYNTH_DAYS=3``) and a tiny untrained diffusion checkpoint (the timings measure the
dashboard, not the model), region ``sample`` (40 x 40 fine cells), 4 members, 4 steps.

Run from the repository root::

    .venv/bin/python benchmarks/bench_browser.py [--repeats 7] [--hours 6] [--region sample] [--members 4]

Targets: date change < 0.5 s, first map < 5 s, landing ensemble < 5 s, play >= 2 frames/s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ppviz.serve_probe import liveness_url, wait_for_liveness  # noqa: E402 - after the path

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
PAINTED_JS = """() => {
  // true once some canvas of a Bokeh plot has non-transparent pixels
  const seen = [];
  const walk = (root) => {
    for (const el of root.querySelectorAll('*')) {
      if (el.tagName === 'CANVAS') seen.push(el);
      if (el.shadowRoot) walk(el.shadowRoot);
    }
  };
  walk(document);
  for (const c of seen) {
    if (c.width < 50 || c.height < 50) continue;
    try {
      const ctx = c.getContext('2d');
      const d = ctx.getImageData(0, 0, c.width, c.height).data;
      for (let i = 3; i < d.length; i += 4 * 97) if (d[i] !== 0) return true;
    } catch (e) {}
  }
  return false;
}"""
IMAGES_JS = """() => {
  // image sources holding finite values, and the plot titles, of the page's Bokeh documents
  let images = 0; const titles = [];
  for (const doc of (window.Bokeh && window.Bokeh.documents) || []) {
    for (const m of doc.all_models) {
      const name = m.constructor.__name__;
      if (name === 'Title' && m.text) titles.push(m.text);
      if (name === 'ColumnDataSource') {
        const data = m.data instanceof Map ? Object.fromEntries(m.data) : m.data;
        for (const img of (data && data.image) || []) {
          for (let i = 0; i < img.length; i++) { if (Number.isFinite(img[i])) { images++; break; } }
        }
      }
    }
  }
  return {images, titles};
}"""
PLAY_RATE_JS = r"""async (seconds) => {
  // hours shown per second while playing: distinct 'Showing <time> UTC' texts, polled every frame
  const find = (root) => {
    for (const el of root.querySelectorAll('*')) {
      if (el.childElementCount === 0 && /^Showing \d{4}-/.test(el.textContent)) return el.textContent;
      if (el.shadowRoot) { const r = find(el.shadowRoot); if (r) return r; }
    }
    return null;
  };
  let last = find(document), changes = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) {
    await new Promise(r => requestAnimationFrame(r));
    const now = find(document);
    if (now && now !== last) { changes++; last = now; }
  }
  return changes / ((performance.now() - t0) / 1000);
}"""
TWO_FRAMES_JS = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))"
IN_PAGE_STEP_JS = r"""async (target) => {
  // click 'hour ▶', wait for `target` in the page, then two frames; count replaced data sources
  const find = (root, pred) => {
    for (const el of root.querySelectorAll('*')) {
      if (pred(el)) return el;
      if (el.shadowRoot) { const r = find(el.shadowRoot, pred); if (r) return r; }
    }
    return null;
  };
  const button = find(document, el => el.tagName === 'BUTTON' && el.textContent.trim() === 'hour ▶');
  const doc = Bokeh.documents[0];
  const sources = new Set();
  const count = (ev) => { if (ev.attr === 'data' && ev.model) sources.add(ev.model.id); };
  doc.on_change(count, true);
  const t0 = performance.now();
  button.click();
  while (!find(document, el => el.childElementCount === 0 && el.textContent.includes(target))) {
    await new Promise(r => requestAnimationFrame(r));
    if (performance.now() - t0 > 30000) { doc.remove_on_change(count); return null; }
  }
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  const ms = performance.now() - t0;
  doc.remove_on_change(count);
  return {ms, sources: sources.size};
}"""


def make_tiny_checkpoint(root: Path) -> None:
    """An untrained 2-level U-Net downscaler, ``tiny-diffusion``, in ``root``."""
    from ppviz.diffusion.tiny import save_tiny_diffusion

    save_tiny_diffusion(root, "tiny-diffusion")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(env: dict, log_path: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "panel", "serve", str(REPO / "app.py"), "--port", str(port), "--address", "127.0.0.1",
         "--setup", str(REPO / "ppviz" / "serve_setup.py"), "--warm",  # as `ppviz serve` starts it
         "--allow-websocket-origin", f"127.0.0.1:{port}", "--liveness"],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        wait_for_liveness(proc, liveness_url(port), timeout=180, log=log_path, interval=0.3)
    except RuntimeError:
        proc.kill()
        raise
    return proc, f"http://127.0.0.1:{port}/app"


def open_to_first_map(browser, url: str) -> float:
    page = browser.new_page(viewport={"width": 1600, "height": 1200})
    t0 = time.perf_counter()
    page.goto(url)
    page.wait_for_function(PAINTED_JS, timeout=120_000, polling=50)
    dt = time.perf_counter() - t0
    page.close()
    return dt


def landing_ensemble(browser, url: str, members: int) -> float:
    """Seconds from ``goto(url)`` to the status saying ``computed in`` with all ``members`` member
    slots (and the other maps) holding data, painted."""
    page = browser.new_page(viewport={"width": 1600, "height": 1200})
    t0 = time.perf_counter()
    page.goto(url, timeout=300_000)  # the first session after start-up also loads the libraries
    try:
        page.get_by_text("computed in").first.wait_for(timeout=300_000)
        page.wait_for_function(f"() => ({IMAGES_JS})().images >= {8 + members}", timeout=120_000, polling=50)
    except Exception as exc:  # noqa: BLE001 - reported as a landing that never drew, not a crash
        print(f"landing {url} not drawn: {type(exc).__name__}: {str(exc).splitlines()[0]}", file=sys.stderr)
        page.close()
        return float("nan")
    page.evaluate(TWO_FRAMES_JS)
    dt = time.perf_counter() - t0
    page.close()
    return dt


def play_and_click(browser, url: str, hours: int, seconds: float) -> tuple[dict, list[float]]:
    """``({fps asked: hours shown per second}, [seconds from a click on the mean map to the cell's
    series drawn])``: Play over ``hours`` hours once they are computed, then clicks on cells."""
    page = browser.new_page(viewport={"width": 1600, "height": 2200})
    page.set_default_timeout(300_000)
    rates = {}
    for fps in (3, 6):
        page.goto(f"{url}&span={hours}&fps={fps}", timeout=300_000)
        page.get_by_text("computed in").first.wait_for()
        page.get_by_role("button", name="▶ Play").click()
        page.get_by_text(f"{hours} of {hours} hours computed").first.wait_for()
        page.wait_for_timeout(1500)
        rates[fps] = page.evaluate(PLAY_RATE_JS, seconds)
        page.get_by_role("button", name="⏸ Pause").click()
    page.wait_for_timeout(1000)
    boxes = [b for b in (c.bounding_box() for c in page.locator("canvas").all()) if b and b["x"] > 320
             and b["width"] > 150]
    top = min(b["y"] for b in boxes)
    mean_map = sorted((b for b in boxes if abs(b["y"] - top) < 30), key=lambda b: b["x"])[3]
    clicks = []
    for k in range(4):
        before = {t for t in page.evaluate(IMAGES_JS)["titles"] if t.startswith("Cell ")}
        t0 = time.perf_counter()
        page.mouse.click(mean_map["x"] + mean_map["width"] * (0.45 + 0.1 * k), mean_map["y"] + mean_map["height"] * 0.5)
        try:
            page.wait_for_function(
                f"() => ({IMAGES_JS})().titles.some(t => t.startsWith('Cell ') && !{sorted(before)!r}.includes(t))",
                polling=20, timeout=30_000)
        except Exception:  # noqa: BLE001 - reported as a click that drew nothing
            clicks.append(float("nan"))
            continue
        page.evaluate(TWO_FRAMES_JS)
        clicks.append(time.perf_counter() - t0)
    page.close()
    return rates, clicks


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--hours", type=int, default=6, help="consecutive cached hours to step through")
    ap.add_argument("--region", default="sample")
    ap.add_argument("--members", type=int, default=4, help="members per run (one map each in the member grid, up to 8)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (server log)")
    ap.add_argument("--play-seconds", type=float, default=8.0, help="seconds of play counted per frame rate")
    ap.add_argument("--checkpoint", default="tiny-diffusion",
                    help="diffusion checkpoint the pages start with (e.g. edm-pp-v1 for the shipped one)")
    args = ap.parse_args(argv)

    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("PPVIZ_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    tmp = Path(tempfile.mkdtemp(prefix="ppviz-bench-browser-"))
    (tmp / "ckpt").mkdir()
    make_tiny_checkpoint(tmp / "ckpt")
    env = dict(os.environ, PPVIZ_DATA_DIR=str(tmp / "data"), PPVIZ_SYNTH_DAYS="3", PPVIZ_CHECKPOINTS=str(tmp / "ckpt"),
               PPVIZ_DEFAULT_DIFFUSION=args.checkpoint)
    shared_ne = REPO.parent / "shared" / "natural-earth"
    if shared_ne.is_dir():
        env.setdefault("PPVIZ_NATURAL_EARTH", str(shared_ne))
    t_start = time.perf_counter()
    proc, url = start_server(env, tmp / "serve.log")
    print(f"server up in {time.perf_counter() - t_start:.1f} s (writes the 3-day synthetic dataset on first use)")
    start = "2021-01-02T06:00"
    query = f"?region={args.region}&members={args.members}&steps=4&seed=0&time={start}"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
            # the bare URL: the warmed default run (the first may still wait for the warm-up)
            landing = [landing_ensemble(browser, url, 4) for _ in range(args.repeats)]
            fresh = [landing_ensemble(browser, f"{url}?{query[1:].replace('seed=0', f'seed={100 + k}')}", args.members)
                     for k in range(3)]
            rates, clicks = play_and_click(browser, url + query, args.hours, args.play_seconds)
            cold = open_to_first_map(browser, url + query)
            opens = [open_to_first_map(browser, url + query) for _ in range(args.repeats)]

            page = browser.new_page(viewport={"width": 1600, "height": 1200})
            page.set_default_timeout(120_000)
            page.goto(url + query)
            page.wait_for_function(PAINTED_JS, polling=50)
            import pandas as pd

            hours = [pd.Timestamp(start) + pd.Timedelta(hours=h) for h in range(args.hours)]
            for h, t in enumerate(hours):  # fill the cache through the UI
                if h:
                    page.get_by_role("button", name="hour ▶").click()
                page.get_by_text(f"Showing {t:%Y-%m-%d %H:%M} UTC").first.wait_for()
                page.get_by_role("button", name="Run ensemble").click()
                page.get_by_text("computed in").first.wait_for()
            def hour_changes(step):
                """``step(page, t)`` for each cached hour after the first, from a fresh load; repeated."""
                out = []
                for _ in range(max(1, args.repeats // max(1, args.hours - 1) + 1)):
                    page.goto(url + query)
                    page.wait_for_function(PAINTED_JS, polling=50)
                    page.get_by_text("computed in").first.wait_for()
                    page.wait_for_timeout(500)
                    for t in hours[1:]:
                        out.append(step(page, t))
                        page.wait_for_timeout(300)
                return out

            def by_playwright(page, t):
                t0 = time.perf_counter()
                page.get_by_role("button", name="hour ▶").click()
                page.get_by_text(f"Showing {t:%Y-%m-%d %H:%M} UTC").first.wait_for(timeout=30_000)
                page.get_by_text("computed in").first.wait_for(timeout=30_000)
                page.evaluate(TWO_FRAMES_JS)
                return time.perf_counter() - t0

            def in_the_page(page, t):
                r = page.evaluate(IN_PAGE_STEP_JS, f"Showing {t:%Y-%m-%d %H:%M} UTC")
                if r is None:
                    raise RuntimeError(f"the page never showed {t} UTC")
                page.get_by_text("computed in").first.wait_for(timeout=30_000)
                return r["ms"] / 1000, r["sources"]

            changes = hour_changes(by_playwright)
            in_page, sources = (list(x) for x in zip(*hour_changes(in_the_page)))
            browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}")

    med_open, med_change = statistics.median(opens), statistics.median(changes)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"machine: {os.cpu_count()} CPUs, load average {load:.2f}; chromium {chromium}; region {args.region}, "
          f"{args.members} members x 4 steps, tiny checkpoint")
    print(f"open URL -> first map drawn : median {med_open:.2f} s over {len(opens)} "
          f"(min {min(opens):.2f}, max {max(opens):.2f}); cold first session {cold:.2f} s; target < 5 s: "
          f"{'OK' if med_open < 5 else 'MISSED'}")
    print(f"date change -> all panels updated (cached): median {med_change:.3f} s over {len(changes)} "
          f"(min {min(changes):.3f}, max {max(changes):.3f}); target < 0.5 s: "
          f"{'OK' if med_change < 0.5 else 'MISSED'}")
    print(f"date change timed inside the page (no Playwright round trips): median {statistics.median(in_page):.3f} s "
          f"over {len(in_page)} (min {min(in_page):.3f}, max {max(in_page):.3f}); data sources replaced per change: "
          f"{min(sources)}-{max(sources)}")
    print(f"URL -> landing ensemble drawn (bare URL, warmed at start): first {landing[0]:.2f} s, median "
          f"{statistics.median(landing):.2f} s over {len(landing)}; not cached (new seed, computed on open): median "
          f"{statistics.median(fresh):.2f} s (min {min(fresh):.2f}, max {max(fresh):.2f}); target < 5 s: "
          f"{'OK' if max(landing[0], statistics.median(fresh)) < 5 else 'MISSED'}")
    print("play over " + str(args.hours) + " computed hours: " + "; ".join(
        f"asked {fps} frames/s -> {r:.2f} hours shown/s" for fps, r in rates.items())
          + f"; target >= 2: {'OK' if rates[3] >= 2 else 'MISSED'}")
    drawn = [c for c in clicks if c == c]
    print(f"time-series click -> drawn: {len(drawn)} of {len(clicks)} clicks drew a new series"
          + (f"; median {statistics.median(drawn):.3f} s (min {min(drawn):.3f}, max {max(drawn):.3f})" if drawn else ""))
    print("  each change (s), Playwright:", " ".join(f"{v:.2f}" for v in changes))
    print("  each change (s), in page:   ", " ".join(f"{v:.2f}" for v in in_page))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
