"""ppviz dashboard entry: ``panel serve app.py`` or ``ppviz serve``.

For now it has one page that maps the loaded data; the dashboard issue adds the rest.
"""

import panel as pn

from pages.data_map import DataMapPage
from ppviz.maps import configure_cartopy

configure_cartopy()
pn.extension(sizing_mode="stretch_width", notifications=True)


def create_app():
    """A fresh app per session."""
    # BootstrapTemplate: the Fast/Material/Vanilla templates fetch Google Fonts, which offline
    # servers cannot reach.
    return pn.template.BootstrapTemplate(
        title="ppviz: pseudo-precipitation over Europe",
        main=[DataMapPage()],
        header_background="#1f4e79",
    )


create_app().servable()
