"""``panel serve --setup`` script of ``ppviz serve``: security headers on every response, and the
landing page's default run queued at once (:func:`ppviz.views.runs.warm_in_background`), so the
first visitor finds its ensemble computed.

Run by Panel in the server process before it serves (in each process with ``--num-procs``).
"""

from ppviz.http_headers import install
from ppviz.views.runs import warm_in_background

install()
warm_in_background()
