"""The Downscale page's in-place redraw (pages.direct) draws exactly what HoloViews draws.

The page is built into a Bokeh document in this process (no browser): an hour change writes the
new arrays into the existing data sources; forcing HoloViews to rebuild the plots for the same
view must give the same images, titles and curves.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest

T0, T1 = "2021-01-02T06:00", "2021-01-02T07:00"


@pytest.fixture(scope="module")
def page_in_doc(tiny):
    """(doc, page) with ensembles cached for T0 and T1, showing T0."""
    import panel as pn
    from bokeh.document import Document
    from panel.io.state import set_curdoc

    from pages.common import SharedState
    from pages.downscale import DownscalePage
    from ppviz.views import cache as M
    from ppviz.views import runs as R

    warnings.filterwarnings("ignore", "All-NaN slice encountered", RuntimeWarning)
    doc = Document()
    with set_curdoc(doc):
        state = SharedState(M.dataset(), time=T0, region="sample")
        page = DownscalePage(state, checkpoint=tiny, members=3, steps=4, seed=0)
        doc.add_root(pn.panel(page).get_root(doc))
        for t in (T1, T0):
            state.time = t
            page._on_run()
            deadline = time.time() + 120
            while R.cached(page._request(state.parsed_region())) is None:
                assert time.time() < deadline, "ensemble did not finish"
                time.sleep(0.05)
            page._refresh()
        yield doc, page


def _snapshot(page):
    from pages import direct as D

    maps = D.element_plots(page._maps, page._map_dmaps)[0]
    curves = D.element_plots(page._curves, page._curve_dmaps)[0]
    ov = D.element_plots(page._overview, page._ov_dmaps)[0]
    snap = {name: (np.array(p.handles["source"].data["image"][0], dtype=float), p.handles["plot"].title.text)
            for name, p in maps.items()}
    snap["overview"] = (np.array(D.layers(ov["overview"])[page.OVERVIEW_LABEL][0].handles["source"].data["image"][0],
                                 dtype=float), "")
    for panel, plot in curves.items():
        for label, layers in D.layers(plot).items():
            for k, layer in enumerate(layers):
                data = layer.handles["source"].data
                snap[f"{panel}/{label}/{k}"] = {c: [np.asarray(v, dtype=float) for v in data[c]] if c in ("xs", "ys")
                                                else np.asarray(data[c], dtype=float) for c in sorted(data)}
    sources = {name: id(p.handles["source"]) for name, p in maps.items()}
    return snap, sources, curves


def _equal(a, b):
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, tuple):
        return all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, str):
        return a == b
    return np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True)


def test_hour_change_in_place_equals_a_holoviews_redraw(page_in_doc):
    from panel.io.state import set_curdoc

    doc, page = page_in_doc
    with set_curdoc(doc):
        page.state.time = T0
        before, sources0, _ = _snapshot(page)
        page.state.time = T1  # same region and members: drawn in place
        direct, sources1, curves = _snapshot(page)
        assert sources1 == sources0, "the hour change rebuilt the plots instead of updating them"
        assert not _equal(before["truth_tp"], direct["truth_tp"]), "the maps did not change with the hour"
        assert not _equal(before["slot0"], direct["slot0"])
        assert "computed in" in page._status.object and "07:00" in page._status.object

        # the curve panels' ranges hold every drawn point
        for panel, plot in curves.items():
            fig = plot.handles["plot"]
            xr_, yr_ = sorted([fig.x_range.start, fig.x_range.end]), sorted([fig.y_range.start, fig.y_range.end])
            for key, data in direct.items():
                if not key.startswith(panel + "/"):
                    continue
                xcol, ycol = next(c for c in (("xs", "ys"), ("wavelength", "psd"), ("truth", "model")) if c[0] in data)
                x, y = (np.concatenate(data[xcol]) if isinstance(data[xcol], list) else data[xcol],
                        np.concatenate(data[ycol]) if isinstance(data[ycol], list) else data[ycol])
                ok = np.isfinite(x) & np.isfinite(y) & (y > 1e-12)
                assert np.all((x[ok] >= xr_[0] * 0.999) & (x[ok] <= xr_[1] * 1.001)), (panel, key)
                assert np.all((y[ok] >= yr_[0] * 0.999) & (y[ok] <= yr_[1] * 1.001)), (panel, key)

        page._layout_key = None  # force HoloViews to build every plot anew for the same view
        page._refresh()
        rebuilt, sources2, _ = _snapshot(page)
        assert sources2 != sources1
    assert direct.keys() == rebuilt.keys()
    different = [k for k in direct if not _equal(direct[k], rebuilt[k])]
    assert not different, f"in-place redraw differs from HoloViews for {different}"


def test_member_selection_in_place(page_in_doc):
    from panel.io.state import set_curdoc

    doc, page = page_in_doc
    with set_curdoc(doc):
        page.state.time = T1
        page.member = 0
        first, sources0, _ = _snapshot(page)
        page.member = 2
        second, sources1, _ = _snapshot(page)
        page.member = 0
    assert sources0 == sources1
    assert second["member"][1].startswith("member 2")
    assert _equal(second["member"][0], first["slot2"][0])


def test_maps_share_one_coastline_source_and_carry_few_models(page_in_doc, natural_earth):
    """Each map draws coastlines and borders as one glyph on the document's one shared source, its
    image keeps no selection/muted copies, and its tools are pan, wheel zoom, reset and hover."""
    from bokeh.models import BoxZoomTool, ColumnDataSource, GlyphRenderer, MultiLine, SaveTool

    from pages import direct as D

    doc, page = page_in_doc
    maps = D.element_plots(page._maps, page._map_dmaps)[0]
    assert len(maps) == 8 + 3  # two rows of four, three member slots
    coast_sources = set()
    for name, plot in maps.items():
        fig = plot.state
        coast = [r for r in fig.renderers if isinstance(r, GlyphRenderer) and isinstance(r.glyph, MultiLine)]
        assert len(coast) == 1, (name, fig.renderers)
        coast_sources.add(id(coast[0].data_source))
        data = coast[0].data_source.data
        assert data["color"] == ["black", "#555555"] and len(data["xs"]) == 2  # coastline, borders
        assert np.isnan(data["xs"][0]).any() and np.isfinite(data["xs"][0]).sum() > 100  # NaN-separated lines
        image = plot.handles["glyph_renderer"]
        assert image.selection_glyph is None and image.nonselection_glyph is None and image.muted_glyph is None
        assert {type(t).__name__ for t in fig.toolbar.tools} == {"PanTool", "WheelZoomTool", "ResetTool", "HoverTool"}
        assert not any(isinstance(t, (BoxZoomTool, SaveTool)) for t in fig.toolbar.tools)
    assert len(coast_sources) == 1
    n_sources = sum(isinstance(m, ColumnDataSource) for m in doc.models)
    assert n_sources <= 11 + 1 + 13 + 4, n_sources  # images, coast, curve layers, overview (image, box, coast)


def test_direct_helpers_refuse_shape_changes_and_find_extents():
    from pages import direct as D

    class Source:
        data = {"image": [np.zeros((3, 4))]}

    class Plot:
        handles = {"source": Source()}

    with pytest.raises(ValueError, match="shape changed"):
        D.set_image(Plot(), np.zeros((4, 4)))
    with pytest.raises(ValueError, match="no columns"):
        D.set_columns(Plot(), psd=[1.0])
    assert D.log_extent([np.array([np.nan, 0.0])]) is None
    lo, hi = D.log_extent([np.array([1.0, 100.0, np.nan])], pad=0.5)
    assert lo == pytest.approx(0.1) and hi == pytest.approx(1000.0)


def test_every_page_map_draws_its_coast_as_one_glyph_on_one_shared_source(natural_earth):
    """`pages.common.coasted` (the one way pages put coastlines on a map): in overlays with other
    marks (Gibbs' lines, scatter) and across a layout, each figure gets one coastline glyph and the
    document sends the lines once."""
    import holoviews as hv
    import panel as pn
    from bokeh.document import Document
    from bokeh.models import GlyphRenderer, MultiLine
    from panel.io.state import set_curdoc

    from pages.common import coasted, image

    bounds = (45.0, 55.0, 0.0, 10.0)
    field = np.random.default_rng(0).gamma(0.5, 1.0, (40, 40)).astype(np.float32)
    img_bounds = (0.0, 45.0, 10.0, 55.0)
    doc = Document()
    with set_curdoc(doc):
        layout = hv.Layout([
            hv.Overlay([coasted(image(field, img_bounds, kind="tp", title="a"), bounds), hv.HLine(50.0)]),
            hv.Overlay([coasted(image(field, img_bounds, kind="tp", title="b"), bounds),
                        hv.Points([(5.0, 50.0)]), hv.HLine(48.0)]),
            coasted(image(field, img_bounds, kind="pp", title="c"), bounds),
        ]).cols(3)
        doc.add_root(pn.panel(layout).get_root(doc))
    figs = [m for m in doc.models if type(m).__name__ == "figure"]
    assert len(figs) == 3
    sources = set()
    for fig in figs:
        coast = [r for r in fig.renderers if isinstance(r, GlyphRenderer) and isinstance(r.glyph, MultiLine)]
        assert len(coast) == 1, fig.renderers
        sources.add(id(coast[0].data_source))
    assert len(sources) == 1
