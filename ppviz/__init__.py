"""ppviz: pseudo-precipitation downscaling over Europe (after arXiv 2412.14620).

The library is importable headless and never imports Panel; the dashboard lives in ``pages/``
and ``app.py``.
"""

__version__ = "0.1.0"
