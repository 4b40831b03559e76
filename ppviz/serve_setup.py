"""``panel serve --setup`` script of ``ppviz serve``: security headers on every response.

Run by Panel in the server process before it serves (in each process with ``--num-procs``).
"""

from ppviz.http_headers import install

install()
