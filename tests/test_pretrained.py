"""The shipped checkpoints: they load, fit together, and still do what their model cards say."""

from __future__ import annotations

import numpy as np
import pytest

from ppviz.checkpoints import default_checkpoint, load_checkpoint, list_checkpoints
from ppviz.data.regions import Region
from ppviz.data.source import load_dataset
from ppviz.metrics.pp import PP_TARGETS, check_targets
from ppviz.pipeline import Models, downscale_time
from ppviz.metrics import crps_ensemble
from ppviz.training.pp import CellPool, evaluate_pp, split_times

from conftest import REPO

KEYS = ("wet_relative_mae", "dry_decoded_below_0.05", "dry_spearman_pp_negvimd")


def test_shipped_checkpoints_are_registered_defaults_and_small():
    assert default_checkpoint("pp") == "pp-mlp-v1"
    assert default_checkpoint("diffusion") == "edm-pp-v2"
    shipped = {i.name for i in list_checkpoints() if i.ok}
    assert {"pp-mlp-v1", "edm-pp-v1", "edm-tp-v1", "edm-pp-v2", "edm-tp-v2"} <= shipped
    size = sum(f.stat().st_size for f in (REPO / "pretrained").rglob("*") if f.is_file())
    assert size < 30e6, f"pretrained/ is {size / 1e6:.1f} MB; the limit is 30 MB"
    for name in ("pp-mlp-v1", "edm-pp-v1", "edm-pp-v2", "edm-tp-v2"):
        card = (REPO / "pretrained" / name / "MODEL_CARD.md").read_text()
        assert "command:" in card and "Held-out" in card


@pytest.mark.parametrize("name", ["edm-pp-v1", "edm-pp-v2", "edm-tp-v2"])
def test_diffusion_records_the_pp_model_it_was_trained_with(name):
    dif = load_checkpoint(name)
    pp = load_checkpoint("pp-mlp-v1")
    assert dif.extra["pp_checkpoint"] == "pp-mlp-v1"
    assert dif.extra["pp_checkpoint_sha256"] == pp.sha256
    assert dif.extra["heldout_scores"]["crps_below_bicubic_mae"]
    # the PP models keep the 50-200 km spectrum within a factor 1.5; the TP control v2 does not
    # (min ratio 0.62 on its held-out dates: its card says so)
    assert dif.extra["heldout_scores"]["spectrum_within_factor_1.5"] == (name != "edm-tp-v2")


def test_shipped_pp_meets_its_targets_on_synthetic_hours():
    # The test data are the first 3 synthetic days (same generator and seed as the 60-day set).
    ds = load_dataset(None)
    model = load_checkpoint("pp-mlp-v1").model
    scores = evaluate_pp(model, CellPool.from_dataset("synthetic", ds, np.arange(0, ds.sizes["time"], 3)))
    print(scores)
    failures = [k for k, ok in check_targets(scores, keys=KEYS).items() if not ok]
    assert not failures, failures
    # No KS bound here: three days are one weather regime (PP mean 0.17 on them); the KS target is
    # met on the 12 held-out days of the 60-day set, as `ppviz train pp` prints (model card).


def test_shipped_pp_meets_its_targets_on_held_out_era5_hours(era5_sample, tmp_path):
    from ppviz.data.prepare import prepare_dataset

    model = load_checkpoint("pp-mlp-v1").model
    s = era5_sample
    days = [
        dict(tp_path=s / "ERA5_2020-01-01_tp.nc", q=s / "ERA5_2020-01-01_pl_q.nc", u=s / "ERA5_2020-01-01_pl_u.nc",
             v=s / "ERA5_2020-01-01_pl_v.nc", sp=s / "ERA5_2020-01-01_sp.nc"),
        dict(tp_path=s / "ERA5_2022-08-31_tp.nc", q=s / "ERA5_2022-08-31_ml_q.nc", u=s / "ERA5_2022-08-31_ml_u.nc",
             v=s / "ERA5_2022-08-31_ml_v.nc", sp=s / "ERA5_2022-08-31_sp.nc",
             levels=s / "era5_L137_model_levels.csv"),
    ]
    for files in days:
        ds = prepare_dataset(**files)
        _, held = split_times(ds.time.values, 0.2)
        scores = evaluate_pp(model, CellPool.from_dataset("era5", ds, held))
        failures = [k for k, ok in check_targets(scores, keys=KEYS).items() if not ok]
        assert not failures, (files["tp_path"].name, failures, scores)


def test_shipped_diffusion_beats_bicubic_on_one_held_out_alps_date():
    ds = load_dataset(None)
    models = Models.load(device="cpu")
    region = Region.parse("alps")
    t = ds.time.values[30]
    ens = downscale_time(models, ds, t, region, members=4, steps=18, seed=0)
    truth = ens.inputs.truth_tp
    assert np.isfinite(ens.tp_members).all() and (ens.tp_members >= 0).all()
    crps = float(crps_ensemble(ens.tp_members, truth).mean())  # fair CRPS
    mae = np.abs(ens.baselines["bicubic"] - truth).mean()
    assert crps < mae, (crps, mae)
    # members carry small-scale variance that bicubic lacks
    def small_scale(f):
        return float(np.var(f - np.asarray(ens.baselines["nearest"])))
    assert np.mean([small_scale(m) for m in ens.tp_members]) > 2 * small_scale(ens.baselines["bicubic"])


def test_pp_targets_are_the_issue_targets():
    assert PP_TARGETS["ks_normal"][1] == pytest.approx(0.03)
    assert PP_TARGETS["wet_relative_mae"][1] == pytest.approx(0.05)
