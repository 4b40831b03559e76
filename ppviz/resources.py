"""Where the files that ship beside the library are: the dashboard entry and the checkpoints.

Two layouts, one lookup:

* a checkout (or an editable install): ``app.py``, ``pages/`` and ``pretrained/`` at the
  repository's top level, beside ``ppviz/``;
* an installed wheel: the same files inside the package, as ``ppviz/dashboard/app.py``,
  ``ppviz/dashboard/pages/`` and ``ppviz/pretrained/`` (pyproject.toml maps them there).

The packaged location wins when it exists: in a checkout it never does, and in site-packages the
directory above ``ppviz/`` is shared with every other distribution (an unrelated top-level
``app.py`` there must not be taken for ours).
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
#: The repository root when running from a checkout; site-packages in an installed wheel.
CHECKOUT_DIR = PACKAGE_DIR.parent


def _packaged_or_checkout(packaged: Path, checkout: Path) -> Path:
    return packaged if packaged.exists() else checkout


#: The Panel entry that ``ppviz serve`` runs (it imports the pages as ``pages.*`` from its directory).
APP = _packaged_or_checkout(PACKAGE_DIR / "dashboard" / "app.py", CHECKOUT_DIR / "app.py")
#: The shipped checkpoints (``<name>/config.json`` + ``model.safetensors`` + card + training log).
PRETRAINED_DIR = _packaged_or_checkout(PACKAGE_DIR / "pretrained", CHECKOUT_DIR / "pretrained")
#: True when running from an installed wheel rather than a checkout.
INSTALLED = APP.parent.parent == PACKAGE_DIR
#: Data shipped with ppviz (the prepared ERA5 sample, ``era5-sample.nc``): ``assets/`` in a checkout,
#: ``ppviz/assets/`` in a wheel.
ASSETS_DIR = _packaged_or_checkout(PACKAGE_DIR / "assets", CHECKOUT_DIR / "assets")
