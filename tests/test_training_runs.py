"""The Training runs page's view-model (:mod:`ppviz.views.training_runs`): runs and snapshots by
label below the roots, snapshots as downscaling requests, promotion into the registry, and the
refusals: a label outside the roots, a missing or damaged snapshot, a name clash on promote."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ppviz.views import training_runs as T
from ppviz.training.snapshots import LOG_FILE, append_line, snapshot_dir, write_snapshot

TIME = "2021-01-01T12:00"
REGION = "46,50,1,5"


def _run(root: Path, label: str, steps=(2, 4), seed: int = 0) -> Path:
    """A run directory with loss lines, snapshots of a tiny model at ``steps`` and their scores."""
    from ppviz.diffusion.tiny import tiny_downscaler

    run = root / label
    run.mkdir(parents=True)
    for s in range(1, max(steps, default=1) + 1):
        append_line(run / LOG_FILE, {"step": s, "loss": 1.0 / s, "lr": 1e-3, "seconds": 0.1 * s})
        if s in steps:
            write_snapshot(run, s, tiny_downscaler(seed, perturb=0.01 * s), {"pp_checkpoint": "pp-mlp-v1"})
            append_line(run / LOG_FILE, {"step": s, "event": "snapshot", "snapshot": snapshot_dir(run, s).name,
                                         "scores": {"crps_fair": 0.1 / s, "lsd_db": 3.0, "p99_ratio": 0.9,
                                                    "wet_fraction": 0.2, "wet_fraction_truth": 0.25,
                                                    "times": [TIME[:13]], "seeds": [0], "members": 2,
                                                    "sampler_steps": 12, "region": REGION}})
    return run


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    _run(root, "exp1/run-a")
    _run(root, "run-b", steps=(3,), seed=1)
    return root


@pytest.fixture
def registry(tmp_path, monkeypatch) -> Path:
    reg = tmp_path / "registry"
    reg.mkdir()
    monkeypatch.setenv("PPVIZ_CHECKPOINTS", str(reg))
    return reg


def test_runs_and_snapshots_by_label(roots):
    assert sorted(T.run_choices([roots])) == ["exp1/run-a", "run-b"]
    assert T.resolve_run("exp1/run-a", [roots]) == (roots / "exp1" / "run-a").resolve()
    assert T.resolve_run(str(roots / "run-b"), [roots]) == (roots / "run-b").resolve()  # absolute, inside
    assert sorted(T.snapshot_choices([roots])) == ["exp1/run-a@2", "exp1/run-a@4", "run-b@3"]
    assert T.parse_snapshot("exp1/run-a@4", [roots]) == ((roots / "exp1" / "run-a").resolve(), 4)
    loss, scores, problems = T.timeline(T.resolve_run("exp1/run-a", [roots]), [roots])
    assert list(loss["step"]) == [1, 2, 3, 4] and list(scores["step"]) == [2, 4] and problems == []
    np.testing.assert_allclose(scores["crps_fair"], [0.05, 0.025])


def test_labels_outside_the_roots_are_refused(roots, tmp_path):
    outside = _run(tmp_path, "elsewhere", steps=(2,))
    (roots / "link").symlink_to(outside)
    try:
        for bad in ("../elsewhere", str(outside), "link", "exp1/../../elsewhere"):
            with pytest.raises(ValueError, match="is not below the training-run roots"):
                T.resolve_run(bad, [roots])
        with pytest.raises(ValueError, match="is not below the training-run roots"):
            T.parse_snapshot("link@2", [roots])
        with pytest.raises(ValueError, match=r"run 'exp1' is not a training run \(no train_log.jsonl there\)"):
            T.resolve_run("exp1", [roots])
        with pytest.raises(ValueError, match="no training run chosen"):
            T.resolve_run(" ", [roots])
        with pytest.raises(ValueError, match="no training-run roots are configured; set PPVIZ_RUNS"):
            T.resolve_run("exp1/run-a", [])
        assert "link" not in T.run_choices([roots])
    finally:
        (roots / "link").unlink()


def test_missing_and_half_written_snapshots(roots, tmp_path):
    with pytest.raises(ValueError, match=r"'run-b@x' is not a snapshot; choose one as RUN@STEP"):
        T.parse_snapshot("run-b@x", [roots])
    with pytest.raises(ValueError, match="run 'run-b' has no complete snapshot at step 4; snapshots: 3"):
        T.parse_snapshot("run-b@4", [roots])
    run = _run(tmp_path / "r", "half", steps=(2,))
    # a snapshot being written is a hidden temporary directory: not listed, not loadable by name
    (run / "snapshots" / ".step-00000004.tmp-1").mkdir()
    assert T.snapshot_choices([tmp_path / "r"]) == ["half@2"]
    with pytest.raises(ValueError, match="has no complete snapshot at step 4; snapshots: 2"):
        T.snapshot_request("half@4", time=TIME, region=REGION, members=2, steps=8, seed=0, roots=[tmp_path / "r"])
    # a damaged one (weights cut short): its request is made, loading it says what is wrong
    w = snapshot_dir(run, 2) / "model.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    _, load = T.snapshot_request("half@2", time=TIME, region=REGION, members=2, steps=8, seed=0,
                                 roots=[tmp_path / "r"])
    with pytest.raises(ValueError, match="snapshot half@2 is incomplete or damaged"):
        load()
    (snapshot_dir(run, 2) / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="snapshot half@2 is incomplete or damaged"):
        T.snapshot_request("half@2", time=TIME, region=REGION, members=2, steps=8, seed=0, roots=[tmp_path / "r"])


def test_two_snapshots_run_on_the_same_seeds(roots, one_thread):
    from ppviz.data.grid import Grid
    from ppviz.data.synthetic import synthesize
    from ppviz.views.runs import run_ensemble

    ds = synthesize(days=1, seed=0, grid=Grid(45.0, 0.0, 0.25, 32, 32))
    out = {}
    for ref in ("exp1/run-a@2", "exp1/run-a@4"):
        req, load = T.snapshot_request(ref, time=TIME, region=REGION, members=2, steps=4, seed=7, roots=[roots])
        sha = json.loads((snapshot_dir(roots / "exp1" / "run-a", int(ref[-1])) / "config.json").read_text())
        assert req.checkpoint == f"{ref}#{sha['weights']['sha256'][:12]}" and req.seed == 7
        assert load() is load()  # loaded once
        out[ref] = run_ensemble(req, ds=ds, models=load, trajectory=False)
    a, b = out.values()
    assert a.request.seed == b.request.seed == 7
    np.testing.assert_array_equal(a.ensemble.inputs.truth_tp, b.ensemble.inputs.truth_tp)
    assert a.ensemble.tp_members.shape == b.ensemble.tp_members.shape == (2, 16, 16)
    assert not np.array_equal(a.ensemble.tp_members, b.ensemble.tp_members)  # different weights, same noise
    with pytest.raises(ValueError, match="steps"):
        T.snapshot_request("exp1/run-a@2", time=TIME, region=REGION, members=2, steps=1, seed=0, roots=[roots])


def test_promote_registers_the_snapshot_and_refuses_clashes(roots, registry, monkeypatch):
    from ppviz.checkpoints import list_checkpoints, load_checkpoint

    monkeypatch.setenv("PPVIZ_RUNS", str(roots))
    path = T.promote("exp1/run-a@4", "edm-run-a-4")
    assert path == registry / "edm-run-a-4"
    info = {i.name: i for i in list_checkpoints("diffusion")}["edm-run-a-4"]
    assert info.ok and "snapshot of run-a at step 4" in info.summary
    assert load_checkpoint(path, kind="diffusion").extra["promoted_from"] == "run-a@4"
    assert "| crps_fair | 0.0250 |" in (path / "MODEL_CARD.md").read_text()
    with pytest.raises(ValueError, match=r"a checkpoint named 'edm-run-a-4' is already registered"):
        T.promote("exp1/run-a@2", "edm-run-a-4")
    with pytest.raises(ValueError, match="a checkpoint named 'pp-mlp-v1' is already registered"):
        T.promote("exp1/run-a@2", "pp-mlp-v1")  # shipped: a user one would be shadowed
    with pytest.raises(ValueError, match=r"'\.\./x' is not a valid checkpoint name"):
        T.promote("exp1/run-a@2", "../x")
    with pytest.raises(ValueError, match="is not below the training-run roots"):
        T.promote("../x@2", "fine-name")
    monkeypatch.delenv("PPVIZ_CHECKPOINTS")
    with pytest.raises(ValueError, match="no writable checkpoint directory: set PPVIZ_CHECKPOINTS"):
        T.promote("exp1/run-a@2", "fine-name")


def test_log_signature_and_refresh_interval(roots, tmp_path, monkeypatch):
    run = _run(tmp_path, "live", steps=())
    before = T.log_signature("live", [tmp_path])
    append_line(run / LOG_FILE, {"step": 9, "loss": 0.1})
    assert T.log_signature("live", [tmp_path]) != before
    assert T.log_signature("../nope", [tmp_path]) is None
    monkeypatch.delenv(T.REFRESH_ENV, raising=False)
    assert T.refresh_ms() == 3000
    monkeypatch.setenv(T.REFRESH_ENV, "250")
    assert T.refresh_ms() == 250
    monkeypatch.setenv(T.REFRESH_ENV, "10")
    with pytest.raises(ValueError, match="PPVIZ_RUNS_REFRESH_MS=10 is out of range; allowed 100..600000 ms"):
        T.refresh_ms()


def test_page_rereads_the_log_only_when_it_changed_and_polls_only_while_open(tmp_path, monkeypatch):
    """The Training runs page in a Bokeh document (no browser): the periodic callback runs while
    the tab is open, and a poll re-reads the log only when its mtime or size changed."""
    import panel as pn
    from bokeh.document import Document
    from panel.io.state import set_curdoc

    from pages.common import SharedState
    from pages.training_runs import TrainingRunsPage
    from ppviz.views import cache as M

    run = _run(tmp_path, "exp/live", steps=())
    monkeypatch.setenv("PPVIZ_RUNS", str(tmp_path))
    reads = []
    timeline = T.timeline
    monkeypatch.setattr(T, "timeline", lambda *a, **k: reads.append(1) or timeline(*a, **k))
    doc = Document()
    with set_curdoc(doc):
        page = TrainingRunsPage(SharedState(M.dataset()))
        doc.add_root(pn.panel(page).get_root(doc))
        assert page.run == "exp/live" and "exp/live" in page._status.object and len(reads) == 1
        page.set_visible(True)
        assert page._poller is not None and page._poller.period == T.refresh_ms()
        n = len(reads)
        page._poll()
        page._poll()
        assert len(reads) == n  # nothing changed: not re-read
        append_line(run / LOG_FILE, {"step": 2, "loss": 0.25, "lr": 1e-3, "seconds": 0.2})
        page._poll()
        assert len(reads) == n + 1 and "step 2, loss 0.25" in page._status.object
        page.set_visible(False)
        assert page._poller is None
        page.run = "../elsewhere"
        assert "Refused run" in page._run_note.objects[0].object and page._status.object == ""
