"""The noise schedule belongs to the checkpoint (issue 11): stored, used by default, and too few
steps refused with the smallest good value."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ppviz.checkpoints import resolve_checkpoint
from ppviz.checkpoints.schedule import LEGACY, SAMPLER_NAMES, Schedule, schedule_from_config
from ppviz.cli import main
from ppviz.data.regions import Region
from ppviz.data.source import load_dataset
from ppviz.pipeline import Models, downscale_time
from ppviz.request import MAX_STEPS, DownscaleRequest, checkpoint_schedule
from ppviz.training.pp import split_times

SHIPPED = ("edm-pp-v1", "edm-tp-v1", "edm-pp-v2", "edm-tp-v2")


def test_schedule_round_trips_and_refuses_bad_values():
    s = Schedule(sigma_max=3.0, min_steps={"heun": 3}, default_steps=4)
    assert Schedule.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    assert Schedule.from_dict(None) is LEGACY
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        Schedule(sigma_min=1.0, sigma_max=0.5)
    with pytest.raises(ValueError, match="default_steps"):
        Schedule(min_steps={"heun": 5}, default_steps=4)
    with pytest.raises(ValueError, match=r"unknown schedule keys \['sigma_maxx'\]"):
        Schedule.from_dict({"sigma_maxx": 3.0})
    with pytest.raises(ValueError, match="use at least 3"):
        s.check_steps(2, "m")
    s.check_steps(3)


def test_config_without_schedule_reads_as_legacy_and_with_one_round_trips():
    from ppviz.diffusion.downscaler import DownscalerConfig

    d = DownscalerConfig(schedule=Schedule(sigma_max=2.5)).to_dict()
    assert DownscalerConfig.from_dict(d).schedule.sigma_max == 2.5
    del d["schedule"]
    assert DownscalerConfig.from_dict(d).schedule == LEGACY


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_checkpoints_record_a_measured_schedule_scaled_to_their_data(name):
    doc = json.loads((resolve_checkpoint(name) / "config.json").read_text())
    s = schedule_from_config(doc)
    assert "schedule" in doc["config"] and s != LEGACY
    # sigma_max near the target's scale, not EDM's image default of 80
    assert s.sigma_max <= 20 * doc["config"]["sigma_data"]
    assert s.min_steps_for() <= s.default_steps and set(s.min_steps) == set(SAMPLER_NAMES)
    card = (resolve_checkpoint(name) / "MODEL_CARD.md").read_text()
    assert "## Noise schedule" in card and f"sigma_max = {s.sigma_max:g}" in card


def test_sampler_uses_the_checkpoint_schedule_by_default():
    models = Models.load("edm-pp-v1", device="cpu")
    ds = load_dataset(None)
    levels = []
    downscale_time(models, ds, ds.time.values[5], Region.parse("alps"), members=1, steps=None,
                   callback=lambda info: levels.append(info["sigma"]))
    s = models.schedule
    assert len(levels) == s.default_steps and levels[0] == pytest.approx(s.sigma_max)


@pytest.fixture(scope="module")
def heldout_hour():
    ds = load_dataset(None)
    _, held = split_times(ds.time.values, 0.2)
    return ds, ds.time.values[held[len(held) // 2]]


@pytest.mark.parametrize("name", SHIPPED)
@pytest.mark.parametrize("sampler", SAMPLER_NAMES)
def test_every_allowed_step_count_at_its_minimum_is_sound_and_fewer_are_refused(name, sampler, heldout_hour):
    """The issue's must-show: for every sampler, the fewest steps the CLI and the app allow give
    finite tp below 10x the truth's maximum on a held-out hour; every smaller count is refused
    with a message naming the smallest good value."""
    ds, t = heldout_hour
    models = Models.load(name, device="cpu")
    region = Region.parse("alps")
    low = models.schedule.min_steps_for(sampler)
    ens = downscale_time(models, ds, t, region, members=4, steps=low, seed=1, sampler=sampler)
    truth_max = float(np.nanmax(ens.inputs.truth_tp))
    assert np.isfinite(ens.tp_members).all()
    assert float(ens.tp_members.max()) < 10 * max(truth_max, 0.1), (name, low, ens.tp_members.max(), truth_max)
    when = str(np.datetime_as_string(t, unit="h"))
    for n in sorted({2, low - 1} - {low}):
        if n < 2 or n >= low:
            continue
        with pytest.raises(ValueError, match=f"use at least {low}"):
            downscale_time(models, ds, t, region, members=1, steps=n, sampler=sampler)
        with pytest.raises(ValueError, match=f"use at least {low}"):
            DownscaleRequest(checkpoint=name, time=when, region="alps", steps=n, sampler=sampler).validate()
    assert checkpoint_schedule(name) == models.schedule and low <= MAX_STEPS


def test_cli_refuses_too_few_steps_with_the_smallest_good_value(tmp_path, capsys):
    low = checkpoint_schedule("edm-pp-v1").min_steps_for("heun")
    assert low > 2  # measured: 2 and 3 Heun steps blow up edm-pp-v1 (see its card)
    ds = load_dataset(None)
    t = str(np.datetime_as_string(ds.time.values[5], unit="h"))
    code = main(["downscale", "--start", t, "--region", "alps", "--members", "1", "--steps", str(low - 1),
                 "--sampler", "heun", "--checkpoint", "edm-pp-v1", "--workers", "0", "--out", str(tmp_path / "o.nc")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and f"use at least {low}" in err, err
    assert not (tmp_path / "o.nc").exists()


def test_cli_names_the_valid_samplers(tmp_path, capsys):
    code = main(["downscale", "--start", "2021-01-01T05", "--region", "alps", "--sampler", "ddim",
                 "--workers", "0", "--out", str(tmp_path / "o.nc")])
    err = capsys.readouterr().err
    assert code == 2 and "valid samplers" in err and "dpmpp_2m" in err, err


def test_churn_is_refused_for_samplers_other_than_heun():
    with pytest.raises(ValueError, match="churn applies to the heun sampler only"):
        DownscaleRequest(checkpoint="edm-pp-v1", time="2021-01-01T05", region="alps", sampler="euler",
                         churn=1.0).check()
    with pytest.raises(ValueError, match="valid samplers"):
        DownscaleRequest(checkpoint="edm-pp-v1", time="2021-01-01T05", region="alps", sampler="ddim").check()


def test_page_step_widgets_follow_the_checkpoint_schedule():
    import param

    from pages.common import follow_schedule

    class Page(param.Parameterized):
        checkpoint = param.Selector(default="edm-pp-v1", objects=["edm-pp-v1", "edm-tp-v1"])
        sampler = param.Selector(default="heun", objects=list(SAMPLER_NAMES))
        steps = param.Integer(default=8, bounds=(2, 200))

    page = Page()
    follow_schedule(page, sampler="sampler")
    pp = checkpoint_schedule("edm-pp-v1")
    assert page.param.steps.bounds == (pp.min_steps_for("heun"), 200)
    with pytest.raises(ValueError):
        page.steps = pp.min_steps_for("heun") - 1  # the widget refuses it, naming the bound
    page.sampler = "euler_maruyama"
    assert page.param.steps.bounds[0] == pp.min_steps_for("euler_maruyama")
    page.checkpoint = "edm-tp-v1"
    assert page.param.steps.bounds[0] == checkpoint_schedule("edm-tp-v1").min_steps_for("euler_maruyama")
