"""Where an ensemble comes from on a page: a ppviz checkpoint (sampled here) or a predictions file
made elsewhere (:mod:`ppviz.views.external`; only below ``$PPVIZ_EVAL_ROOTS``).

:class:`PredictionsChoice` holds the choice and the file's reading options; each page keeps it in
the URL under its own names (``url_state(choice, {...})`` in the page) and draws :meth:`controls`.
"""

from __future__ import annotations

import panel as pn
import param

from pages.common import CONTROL_WIDTH
from pages.safe import markdown
from ppviz.views import external as X

CHECKPOINT, PREDICTIONS = "checkpoint", "predictions"


class PredictionsChoice(param.Parameterized):
    """The source of a page's ensemble, and how to read a predictions file (empty: found by the reader)."""

    source = param.Selector(default=CHECKPOINT, objects={"ppviz checkpoint": CHECKPOINT,
                                                         "predictions file": PREDICTIONS},
                            doc="a ppviz checkpoint, or a predictions file made elsewhere")
    path = param.String(default="", doc="predictions file on the server (netCDF or zarr, below PPVIZ_EVAL_ROOTS)")
    var = param.String(default="", doc="predictions variable (empty: by CF standard_name or name)")
    units = param.String(default="", doc="units of the predictions (empty: the file's)")
    truth = param.String(default="", doc="truth file (empty: in the predictions file, or none)")
    when = param.String(default="", doc="time of the predictions shown (YYYY-MM-DDTHH:MM; empty: the page's hour "
                                         "when the file has it, else its first)")
    crop = param.Boolean(default=False, doc="show only the part inside the page's region")

    def __init__(self, label: str = "Source", with_time: bool = True, with_crop: bool = True, **params):
        super().__init__(**params)
        self._label = label
        self._with_time, self._with_crop = with_time, with_crop
        self._setting = False
        self._time = pn.widgets.Select(label="Time of the predictions", options={}, width=CONTROL_WIDTH - 20)
        self._time.param.watch(self._picked, "value")

    @property
    def active(self) -> bool:
        """Whether the predictions file is the source."""
        return self.source == PREDICTIONS

    def spec(self) -> X.PredictionsSource:
        if not self.path.strip():
            raise ValueError("enter the path of a predictions file on the server (netCDF or zarr, below the "
                             "directories of PPVIZ_EVAL_ROOTS)")
        return X.PredictionsSource(self.path, self.var, self.units, self.truth)

    def time_for(self, hour) -> str:
        """The time to show: the chosen one, else ``hour`` (the page's) when the file has it, else
        the file's first; the file's times become the picker's options. ValueError from reading."""
        ds = X.open_source(self.spec())
        options = X.time_options(ds)
        self._time.label = f"Time of the predictions ({ds.attrs.get('time_step') or 'steps unknown'})"
        want = self.when.strip() or (hour.strftime("%Y-%m-%dT%H:%M") if hour is not None else "")
        if not self.when.strip() and want not in options.values():
            want = next(iter(options.values()))
        self._set_picker(options, want if want in options.values() else None)
        return want

    def _set_picker(self, options: dict, value) -> None:
        """Show ``options`` and ``value`` in the time picker without choosing a time for the user."""
        self._setting = True
        try:
            if self._time.options != options:
                self._time.options = options
            if self._time.value != value:
                self._time.value = value
        finally:
            self._setting = False

    def _picked(self, event) -> None:
        if not self._setting and event.new and event.new != self.when:
            self.when = event.new

    def controls(self) -> pn.Column:
        """The source buttons, and for a predictions file its path, reading options and time."""
        w = CONTROL_WIDTH - 20
        radio = pn.widgets.RadioButtonGroup.from_param(self.param.source, width=w)
        parts = [pn.widgets.TextInput.from_param(self.param.path, label="Predictions file on the server", width=w),
                 pn.Row(pn.widgets.TextInput.from_param(self.param.var, label="Variable", width=w // 2 - 5),
                        pn.widgets.TextInput.from_param(self.param.units, label="Units", width=w // 2 - 5)),
                 pn.widgets.TextInput.from_param(self.param.truth, label="Truth file (empty: in the file)", width=w)]
        if self._with_time:
            parts.append(self._time)
        if self._with_crop:
            parts.append(pn.widgets.Checkbox.from_param(self.param.crop, label="Only the part inside the region"))
        box = pn.Column(*parts, visible=self.active, margin=0)
        self.param.watch(lambda e: setattr(box, "visible", e.new == PREDICTIONS), "source")
        return pn.Column(markdown(f"**{self._label}**", margin=(0, 10)), radio, box, width=CONTROL_WIDTH)
