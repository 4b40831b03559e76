"""Security headers on every response of the dashboard server (defence in depth).

The first defence against script injection is that the pages show untrusted strings as text
(:mod:`ppviz.safe_text`). These headers limit what an injected script could do anyway:

- ``Content-Security-Policy``: scripts, styles, fonts, images and connections (websocket
  included) from this server only; no plugins (``object-src 'none'``); ``<base>`` and form
  targets pinned to this server; not framed by other sites (``frame-ancestors``). So an injected
  element cannot load a script from elsewhere or send data to another host.
  What it cannot forbid: inline scripts and ``eval``. Bokeh and Panel write each page's document
  and bootstrap code as inline ``<script>`` blocks without nonces or hashes, and Bokeh/Panel
  compile callbacks and templates with ``new Function``, and Panel loads some of its code as
  ``blob:`` scripts it made itself; ``'unsafe-inline'``, ``'unsafe-eval'`` and ``blob:`` in
  ``script-src`` are the price of serving them at all (found by the browser tests, which fail on
  any CSP violation). Inline styles
  likewise (``style-src 'unsafe-inline'``): every Panel component sets its own.
- ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer`` (a shared link's query
  never leaks to other sites), ``X-Frame-Options: DENY`` (older browsers; CSP's
  ``frame-ancestors`` for the rest), ``Cross-Origin-Opener-Policy: same-origin``,
  ``Permissions-Policy`` turning off camera, microphone, geolocation, payment, USB.

Framing by another site (an LMS page for teaching, say) is opt-in: ``PPVIZ_FRAME_ANCESTORS`` is
a space-separated list of origins allowed to frame the app (``'self'`` allowed too); then
``X-Frame-Options`` is left out, since it cannot name origins.

Bokeh's server runs on Tornado; :func:`install` makes every Tornado handler of the process add
these headers (``ppviz serve`` runs it through ``panel serve --setup``, see
``ppviz/serve_setup.py``).
"""

from __future__ import annotations

import os
import re

FRAME_ANCESTORS_ENV = "PPVIZ_FRAME_ANCESTORS"
_ORIGIN = re.compile(r"^(?:'self'|https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?)$")


def frame_ancestors(value: str | None = None) -> str:
    """The CSP ``frame-ancestors`` source list: ``'none'`` unless origins are configured.

    Raises ValueError naming the bad entry when ``value`` holds anything but origins
    (``https://host[:port]``) or ``'self'``.
    """
    value = (os.environ.get(FRAME_ANCESTORS_ENV, "") if value is None else value).strip()
    if not value:
        return "'none'"
    parts = value.split()
    for p in parts:
        if not _ORIGIN.match(p):
            raise ValueError(f"{FRAME_ANCESTORS_ENV}: {p!r} is not an origin; use e.g. "
                             "'https://lms.example.org https://other.example.org' or \"'self'\"")
    return " ".join(parts)


def security_headers(ancestors: str | None = None) -> dict[str, str]:
    """Header name -> value for every response (see the module docstring for each choice)."""
    fa = frame_ancestors(ancestors)
    csp = "; ".join([
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline' 'unsafe-eval' blob:",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        f"frame-ancestors {fa}",
    ])
    headers = {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
    }
    if fa == "'none'":
        headers["X-Frame-Options"] = "DENY"
    return headers


def install(headers: dict[str, str] | None = None) -> dict[str, str]:
    """Make every Tornado request handler of this process send ``headers`` (default
    :func:`security_headers`). Idempotent; returns the headers installed."""
    from tornado.web import RequestHandler

    headers = dict(security_headers() if headers is None else headers)
    original = getattr(RequestHandler.clear, "_ppviz_original", RequestHandler.clear)

    # clear() runs when a handler starts and before an error page: after the handler's own
    # set_default_headers, so subclasses that override that method get the headers too
    def clear(self) -> None:
        original(self)
        for name, value in headers.items():
            self.set_header(name, value)

    clear._ppviz_original = original  # type: ignore[attr-defined]
    RequestHandler.clear = clear
    return headers
