"""ppviz dashboard entry: ``panel serve app.py`` or ``ppviz serve``.

One fresh app per session: a :class:`pages.common.SharedState` (dataset, hour and region, in the URL)
shared by the pages, each page a ``pn.viewable.Viewer`` from ``pages/`` that calls the library
only. Tabs render lazily (only the page you look at is drawn); the open page is in the URL too
(``?page=N``), so a link reproduces a view.
"""

import json
import warnings

import panel as pn
from bokeh.core.validation import silence
from bokeh.core.validation.warnings import FIXED_SIZING_MODE

from pages.checkpoints import CheckpointsPage
from pages.common import LazyPage, SharedState, alert, error_text, sync_url, url_error_text
from pages.data_map import DataMapPage
from pages.downscale import DownscalePage
from pages.evaluation import EvaluationPage
from pages.gibbs import GibbsPage
from pages.latent import LatentPage
from pages.training_runs import TrainingRunsPage
from pages.safe import markdown, text
from ppviz.views import cache as M
from ppviz.maps import configure_cartopy

configure_cartopy()
# maps are sized by frame_width/height, which Bokeh's validator does not count as a fixed size
silence(FIXED_SIZING_MODE, True)
# maps without data yet (no ensemble run) are all-NaN images: HoloViews' range finder says so
warnings.filterwarnings("ignore", "All-NaN slice encountered", RuntimeWarning)
pn.extension(sizing_mode="stretch_width", notifications=True)

PAGES = (
    ("Downscale", DownscalePage),
    ("Pseudo-precipitation", LatentPage),
    ("Gibbs", GibbsPage),
    ("Evaluation", EvaluationPage),
    ("Checkpoints", CheckpointsPage),
    ("Data", DataMapPage),
    ("Training runs", TrainingRunsPage),  # last: ?page=N links of the other pages keep their N
)


def _page(cls, state):
    """The page, or an alert saying why it could not be built (the other pages still work)."""
    try:
        return cls(state)
    except Exception as exc:  # noqa: BLE001
        return alert(f"This page could not be built: {error_text(exc)}")


def _template(header, main):
    # BootstrapTemplate: the Fast/Material/Vanilla templates fetch Google Fonts, which offline
    # servers cannot reach.
    return pn.template.BootstrapTemplate(title="ppviz: pseudo-precipitation over Europe", header=header,
                                         main=main, header_background="#1f4e79")


def _chosen_data() -> tuple[str, str]:
    """The dataset named by ``?data=`` (else the default) and a message when the URL's was refused."""
    raw = (pn.state.session_args or {}).get("data") or [b""]
    value = raw[0].decode("utf-8", errors="replace").strip() if raw[0] else ""
    if not value:
        return M.default_dataset_name(), ""
    try:
        return M.check_dataset_name(value[:80]), ""
    except ValueError as exc:
        return M.default_dataset_name(), text(f"Ignored URL setting data: {exc}")


# Choosing a dataset reloads the app on it: a new ?data= and the data's own default hour and region.
_RELOAD_ON_DATA = """
const names = %s;
const p = new URLSearchParams(window.location.search);
p.set('data', names[cb_obj.value] || cb_obj.value); p.delete('time'); p.delete('region'); p.delete('box');
window.location.search = p.toString();
"""


def _data_header(state, ds):
    """The dataset choice and what the data are (real ERA5 with its attribution, or synthetic)."""
    choice = pn.widgets.Select(name="", options=M.dataset_choices(), value=state.data, width=300, margin=(8, 10),
                               stylesheets=["select.bk-input { color: #1f1f1f; background-color: white; }"])
    # the browser's value is the option's label: the script maps it to the registry name
    choice.jscallback(value=_RELOAD_ON_DATA % json.dumps(M.dataset_choices()))
    about = markdown(
        f"**Device: {M.device_label()}** · {str(ds.time.values[0])[:10]} to {str(ds.time.values[-1])[:10]} "
        f"({ds.sizes['time']} hours)  \ndata: **{text(M.dataset_label(ds))}**",
        styles={"color": "white", "font-size": "0.85em", "line-height": "1.3"}, sizing_mode="stretch_width",
        margin=(2, 10),
    )
    return pn.Row(choice, about, sizing_mode="stretch_width")


def create_app():
    """A fresh app per session."""
    name, data_error = _chosen_data()
    try:
        ds = M.dataset(name)
    except Exception as exc:  # noqa: BLE001 - a page that says why, not a blank one
        return _template([], [alert(f"The dataset could not be opened: {error_text(exc)} "
                                    "(check PPVIZ_DATA / PPVIZ_DATA_DIR and reload)")])
    state = SharedState(ds, data=name)

    def bad_url(values):
        state.url_error = url_error_text(values, state)

    sync_url(state, {"time": "time", "region": "region", "box": "box"}, on_error=bad_url)
    pages = [_page(cls, state) for _, cls in PAGES]
    tabs = pn.Tabs(*[(name, page) for (name, _), page in zip(PAGES, pages)], dynamic=True,
                   sizing_mode="stretch_width")
    sync_url(tabs, {"active": "page"})

    def shown(*_):
        # pages that compute lazily do so only while they are the open tab
        for i, page in enumerate(pages):
            if isinstance(page, LazyPage):
                page.set_visible(i == tabs.active)

    tabs.param.watch(shown, "active")
    shown()
    main = [tabs]
    if state.url_error:
        main.insert(0, alert(state.url_error, "warning"))
    if data_error:
        main.insert(0, alert(data_error, "warning"))
    return _template([_data_header(state, ds)], main)


create_app().servable()
