"""One state for every page on either dataset: regions inside the data, steps across gaps, the Data
page on the shared hour and region, a run on the ERA5 sample, and the "how to read this" cards."""

from __future__ import annotations

import pytest

from pages.common import SharedState
from ppviz.views import cache as M


@pytest.fixture()
def era5_state():
    return SharedState(M.dataset("era5-sample"), data="era5-sample")


def test_only_regions_inside_the_data_are_offered(era5_state):
    assert era5_state.data == "era5-sample" and era5_state.region == "sample"
    assert sorted(era5_state.param.region.objects.values()) == ["benelux-rhine", "custom", "sample"]
    with pytest.raises(ValueError):
        era5_state.region = "alps"  # outside 45-55N, 0-10E: refused (the URL sync names what is allowed)
    era5_state.param.update(region="custom", box="46,52,2,8")
    assert era5_state.parsed_region().bounds == (45.875, 51.875, 1.875, 7.875)
    synth = SharedState(M.dataset("synthetic"), data="synthetic")
    assert "alps" in synth.param.region.objects.values() and synth.region == "sample"


def test_hour_steps_cross_the_gap_between_the_sample_days(era5_state):
    era5_state.time = "2020-01-01T22:00"
    era5_state.shift(1)
    assert era5_state.time == "2020-01-01T23:00"
    era5_state.shift(1)
    assert era5_state.time == "2022-08-31T00:00"  # the next step of the data, not 2020-01-02
    era5_state.shift(-1)
    assert era5_state.time == "2020-01-01T23:00"
    era5_state.time = "2022-08-31T23:00"
    era5_state.shift(1)
    assert era5_state.time == "2022-08-31T23:00"  # stays at the last step


def test_data_page_follows_the_shared_time_and_region(era5_state):
    import holoviews as hv

    from pages.data_map import DataMapPage

    page = DataMapPage(era5_state)
    era5_state.param.update(time="2022-08-31T15:00", region="benelux-rhine")
    col = page._maps()
    layout = col[0].object
    assert isinstance(layout, hv.Layout)
    tp = layout[0]  # the TP map (coastlines are drawn on it by a plot hook)
    assert isinstance(tp, hv.Image)
    assert "2022-08-31 15:00" in tp.label or "2022-08-31 15:00" in str(tp.opts.get().kwargs.get("title"))
    # benelux-rhine: 49-54N, 2.5-10E snapped to 1 deg cells -> 20 x 28 fine cells
    assert tp.dimension_values(2, flat=False).shape == (20, 28)
    era5_state.param.update(region="custom", box="10,20,0,10")  # outside the data: the reason, no crash
    assert "outside the domain" in page._maps().object or "does not contain" in page._maps().object


def test_a_run_on_the_era5_sample(tiny):
    from ppviz.request import DownscaleRequest
    from ppviz.views.runs import run_ensemble

    req = DownscaleRequest(checkpoint=tiny, time="2022-08-31T15:00", region="sample", members=2, steps=2,
                           data="era5-sample")
    run = run_ensemble(req, trajectory=False)
    out = run.to_dataset()
    assert out.sizes["member"] == 2 and out.sizes["lat"] == 40 and out.sizes["lon"] == 40
    assert float(out.lat.min()) == 45.0 and float(out.lon.max()) == 9.75
    truth = M.dataset("era5-sample")["tp"].sel(time="2022-08-31T15:00").isel(lat=slice(0, 40), lon=slice(0, 40))
    assert abs(float(out["tp_truth"].mean()) - float(truth.mean())) < 1e-5


def test_every_page_has_a_collapsed_how_to_read_this():
    import panel as pn

    from pages.help import HELP, how_to_read

    assert set(HELP) == {"downscale", "latent", "gibbs", "evaluation", "checkpoints", "data", "training_runs"}
    card = how_to_read("gibbs")
    assert isinstance(card, pn.Card) and card.collapsed and card.title == "How to read this"
    assert "Gibbs" in HELP["gibbs"] and "PP" in HELP["gibbs"]
    assert all(40 < len(t.split()) < 220 for t in HELP.values())  # short


def test_evaluation_page_says_when_the_shipped_evaluation_is_on_other_data(era5_state):
    """The shipped evaluation is made on the synthetic data: on the ERA5 sample the page says so
    (it would pass for ERA5 scores), on the synthetic data it does not."""
    from bokeh.document import Document
    from panel.io.state import set_curdoc

    from pages.evaluation import EvaluationPage
    from ppviz.views import evaluation as E

    res = E.EvaluationResult(scalars={"crps": {"ensemble": 0.1}}, settings={"data": "default (embedded synthetic Europe)"})
    with set_curdoc(Document()):
        on_era5 = EvaluationPage(era5_state)
        on_synth = EvaluationPage(SharedState(M.dataset("synthetic"), data="synthetic"))
    note = on_era5._other_data_note(res)
    shown = note[0].object.replace("\\", "")  # the Markdown escapes of the untrusted parts
    assert len(note) == 1 and note[0].alert_type == "info"
    assert "made on default (embedded synthetic Europe), not on the data chosen in the header (real ERA5" in shown
    assert on_synth._other_data_note(res) == []
    assert on_era5._other_data_note(E.EvaluationResult(scalars={}, settings={})) == []
