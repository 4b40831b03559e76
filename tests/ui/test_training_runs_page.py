"""The Training runs page in a browser: a run in progress is listed and its loss curve grows as
the trainer logs steps (no reload), two snapshots of a real tiny training run compare on the same
seeds, a promoted snapshot appears in the registry, and the refusals show as messages."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

expect.set_options(timeout=90_000)
PAGE = 6  # the Training runs tab (app.PAGES)
T0 = "2021-01-02T06:00"

#: points of each curve in the figure titled ``title``: {renderer index: n}
CURVE_POINTS_JS = """(title) => {
  const out = [];
  for (const doc of Bokeh.documents) for (const m of doc.all_models) {
    if (!m.title || m.title.text !== title || !m.renderers) continue;
    for (const r of m.renderers) {
      const d = r.data_source && r.data_source.data;
      if (d && d.step) out.push(d.step.length);
    }
  }
  return out;
}"""

def _loss_line(step: int) -> str:
    """A loss line as the trainer writes it (ppviz.training.diffusion_loop)."""
    return json.dumps({"step": step, "loss": 1.0 / step, "lr": 0.0005, "seconds": round(0.5 * step, 3)}) + "\n"


@pytest.fixture(scope="module")
def runs_env(app_server, tmp_path_factory):
    """A real tiny training run with snapshots at steps 2 and 4 (``exp1/run-a``), a run in
    progress (``exp1/live``, three loss lines), an empty checkpoint registry, and a server
    watching them every 0.5 s."""
    from ppviz.cli import main
    from ppviz.data.canonical import write_dataset
    from ppviz.data.grid import Grid
    from ppviz.data.synthetic import synthesize

    root = tmp_path_factory.mktemp("training-runs-ui")
    data = write_dataset(synthesize(days=1, seed=0, grid=Grid(45.0, 0.0, 0.25, 32, 32)), root / "small.zarr")
    assert main(["train", "diffusion", "--data", str(data), "--out", str(root / "final"), "--state-dir",
                 str(root / "runs" / "exp1" / "run-a"), "--steps", "4", "--batch", "2", "--crop", "16",
                 "--base-channels", "8", "--channel-mult", "1,2", "--eval-dates", "0", "--workers", "0",
                 "--log-every", "1", "--snapshot-every", "2", "--snapshot-hours", "1", "--eval-members", "2",
                 "--eval-region", "46,50,1,5", "--holdout", "0.25"]) == 0
    live = root / "runs" / "exp1" / "live"
    live.mkdir(parents=True)
    (live / "train_log.jsonl").write_text("".join(_loss_line(s) for s in (1, 2, 3)))
    (root / "registry").mkdir()
    env = {"PPVIZ_RUNS": str(root / "runs"), "PPVIZ_CHECKPOINTS": str(root / "registry"),
           "PPVIZ_RUNS_REFRESH_MS": "500", "PPVIZ_WARM": "0", "PPVIZ_RUN_ON_OPEN": "0"}
    with app_server(env, "panel-serve-training-runs.log") as url:
        yield url, root


def _points(page) -> int:
    counts = page.evaluate(CURVE_POINTS_JS, "Training loss (train_log.jsonl)")
    return max(counts) if counts else 0


def test_a_run_in_progress_is_listed_and_its_curve_grows(page, runs_env, screenshot_dir):
    url, root = runs_env
    live = root / "runs" / "exp1" / "live"
    page.set_viewport_size({"width": 1600, "height": 1600})
    page.goto(f"{url}?page={PAGE}&run=exp1/live")
    expect(page.get_by_text(re.compile(r"exp1/live: step 3, loss 0\.3333")).first).to_be_visible()
    page.wait_for_function(f"() => ({CURVE_POINTS_JS})('Training loss (train_log.jsonl)').includes(3)")
    run_select = page.locator("select").filter(has=page.locator("option", has_text="exp1/run-a")).first
    assert {"exp1/live", "exp1/run-a"} <= set(run_select.locator("option").all_text_contents())
    # the trainer logs three more steps: the same plot grows, without a reload
    with open(live / "train_log.jsonl", "a") as f:
        f.write("".join(_loss_line(s) for s in (4, 5, 6)))
    page.wait_for_function(f"() => ({CURVE_POINTS_JS})('Training loss (train_log.jsonl)').includes(6)")
    expect(page.get_by_text(re.compile(r"exp1/live: step 6, loss 0\.1667")).first).to_be_visible()
    assert _points(page) == 6
    # a new run appears in the list while the page is open
    (root / "runs" / "exp2" / "new").mkdir(parents=True)
    (root / "runs" / "exp2" / "new" / "train_log.jsonl").write_text(_loss_line(1))
    expect(run_select.locator("option", has_text="exp2/new")).to_have_count(1)
    # a line being written (or damaged): a message, the good lines stay drawn
    with open(live / "train_log.jsonl", "a") as f:
        f.write('{"step": 7, "loss": 0.1')
    expect(page.get_by_text("train_log.jsonl line 7 is not JSON").first).to_be_visible()
    assert _points(page) == 6
    page.screenshot(path=str(screenshot_dir / "training_runs_live.png"))


def test_two_snapshots_compare_on_the_same_seeds(page, runs_env, screenshot_dir, finite_pixels):
    url, _ = runs_env
    page.set_viewport_size({"width": 1600, "height": 2400})
    page.goto(f"{url}?page={PAGE}&run=exp1/run-a&snap_a=exp1/run-a@2&snap_b=exp1/run-a@4&time={T0}&region=sample"
              "&runs_members=2&runs_steps=4&runs_seed=3")
    expect(page.get_by_text(re.compile(r"exp1/run-a: step 4, loss [\d.]+; 2 scored snapshots")).first).to_be_visible()
    # the held-out scores of both snapshots are drawn
    page.wait_for_function(f"() => ({CURVE_POINTS_JS})('Held-out fair CRPS (lower is better)').includes(2)")
    page.get_by_role("button", name="Compare A and B").click()
    expect(page.get_by_text("same hour, region and member seeds (2 members, 4 steps, seed 3)").first).to_be_visible()
    expect(page.get_by_role("cell", name="A: exp1/run-a@2")).to_be_visible()
    expect(page.get_by_role("cell", name="B: exp1/run-a@4")).to_be_visible()
    page.wait_for_timeout(1500)
    maps = finite_pixels(page, "^[AB] member 0")
    assert set(maps) == {"A member 0: exp1/run-a@2", "B member 0: exp1/run-a@4"}, maps
    assert all(n > 0 for n in maps.values()), maps
    page.screenshot(path=str(screenshot_dir / "training_runs_ab.png"), full_page=True)


def test_a_promoted_snapshot_is_registered(page, runs_env):
    url, root = runs_env
    page.set_viewport_size({"width": 1600, "height": 1600})
    page.goto(f"{url}?page={PAGE}&run=exp1/run-a")
    expect(page.get_by_text(re.compile(r"exp1/run-a: step 4")).first).to_be_visible()
    name = page.get_by_placeholder("e.g. edm-run-a-step2000")
    name.fill("edm-run-a-step4")
    name.press("Enter")
    page.get_by_role("button", name="Promote").click()
    expect(page.get_by_text(re.compile(r"Promoted exp1/run-a@4 to the checkpoint edm-run-a-step4")).first).to_be_visible()
    assert (root / "registry" / "edm-run-a-step4" / "MODEL_CARD.md").is_file()
    # in this session's Checkpoints page (registry table and selectors) at once
    page.locator(".bk-tab", has_text="Checkpoints").click()
    expect(page.get_by_role("cell", name="edm-run-a-step4", exact=True)).to_be_visible()
    assert page.locator("option", has_text="edm-run-a-step4").count() >= 1
    # promoting the same name again is refused, the page keeps working
    page.locator(".bk-tab", has_text="Training runs").click()
    page.get_by_role("button", name="Promote").click()
    expect(page.get_by_text("a checkpoint named 'edm-run-a-step4' is already registered").first).to_be_visible()


def test_a_run_outside_the_roots_is_refused(page, runs_env):
    url, _ = runs_env
    page.goto(f"{url}?page={PAGE}&run=../../etc&snap_a=../x@2&snap_b=exp1/run-a@4")
    expect(page.get_by_text(re.compile(r"Refused run \.\./\.\./etc: run '\.\./\.\./etc' is not below the "
                                       r"training-run roots")).first).to_be_visible()
    page.get_by_role("button", name="Compare A and B").click()
    expect(page.get_by_text(re.compile(r"Cannot compare: run '\.\./x' is not below the training-run roots")).first
           ).to_be_visible()
    # the page keeps working: choose a run from the list
    page.locator("select").filter(has=page.locator("option", has_text="exp1/run-a")).first.select_option("exp1/run-a")
    expect(page.get_by_text(re.compile(r"exp1/run-a: step 4")).first).to_be_visible()
