"""What each map of the Downscale page shows for a view: values, grid, colour kind and title.

A view holds the hour's inputs and a run: a ppviz run (coarse input, PP, members, truth) or one
time of a predictions file (:mod:`ppviz.views.external`: members and maybe a truth on the file's
grid). A part the source does not have is drawn empty with a title that says so
(:data:`ppviz.views.external.NOT_IN_SOURCE`), never left blank or missing.
"""

from __future__ import annotations

import numpy as np

from pages.safe import text
from ppviz.views import curves as C
from ppviz.views.cache import dataset_title
from ppviz.views.external import NOT_IN_SOURCE

#: the maps, row by row (TP on top, latent and spread below), and which carry a colour bar
ROWS = (("coarse_tp", "truth_tp", "member", "mean"), ("coarse_pp", "truth_pp", "member_pp", "spread"))
COLORBAR = {"mean", "member_pp", "spread"}
_TITLES = {"coarse_tp": "coarse input TP (1°)", "coarse_pp": "coarse PP (1°), the condition",
           "truth_pp": "truth PP (0.25°)", "truth_tp": "truth TP (0.25°)"}
_KINDS = {"coarse_tp": "tp", "coarse_pp": "pp", "truth_pp": "pp", "truth_tp": "tp", "member_pp": "pp",
          "spread": "spread"}


def is_external(view) -> bool:
    """Whether ``view`` shows a predictions file (no ppviz chain behind it)."""
    return view is not None and view.run is not None and hasattr(view.run, "source")


def where(view, data: str) -> str:
    """What the status says the maps show, as safe Markdown: the region and the dataset (``data``,
    a registry name), e.g. ``Sample box (45-55N, 0-10E) of Synthetic Europe``."""
    return f"{text(view.inputs.region.title)} of {text(dataset_title(data))}"


def field(name: str, view):
    """(values, grid, kind, title) of the map ``name`` (a name of :data:`ROWS` or ``slot<j>``)."""
    inp, run = view.inputs, view.run
    fg = inp.region.fine_grid
    nan = np.full(fg.shape, np.nan, np.float32)
    kind = _KINDS.get(name, "tp")
    if name in _TITLES:
        values = getattr(inp, name)
        if values is None and is_external(view):
            grid_title = _TITLES[name].replace(" (0.25°)", "").replace(" (1°)", "")
            return nan, fg, kind, f"{grid_title}: {NOT_IN_SOURCE}"
        if name.startswith("coarse"):
            return values, inp.region.coarse_grid, kind, _TITLES[name]
        title = _TITLES[name].replace("0.25°", f"{fg.res:g}°") if is_external(view) else _TITLES[name]
        return (values if values is not None else nan), fg, kind, title
    if run is None:
        label = {"member": f"member {view.member} TP", "member_pp": f"member {view.member} PP",
                 "mean": "ensemble mean TP", "spread": "ensemble spread (std)"}.get(name, name.replace("slot", "member "))
        return nan, fg, kind, f"{label}: press Run"
    ens = run.ensemble
    m = ens.tp_members.shape[0]
    k = min(view.member, m - 1)
    if name == "member":
        return ens.tp_members[k], fg, "tp", f"member {k} TP (slider)"
    if name == "member_pp":
        if ens.pp_members is None:
            return nan, fg, "pp", f"member {k} PP: {NOT_IN_SOURCE}"
        latent = "PP" if ens.settings.get("target", "pp") == "pp" else "latent (transformed tp)"
        return ens.pp_members[k], fg, "pp", f"member {k} {latent}"
    if name in ("mean", "spread"):
        mean, spread = view.mean_spread
        n = len(C.selected(ens, view.shown))
        return (mean, fg, "tp", f"ensemble mean TP ({n} members)") if name == "mean" else \
            (spread, fg, "spread", "ensemble spread (std, mm/h)")
    j = int(name[4:])
    if j < m:
        return ens.tp_members[j], fg, "tp", f"member {j}"
    return nan, fg, "tp", f"member {j}: not in this run"
