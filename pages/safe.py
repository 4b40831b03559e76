"""The only places pages turn strings into Markdown or HTML panes (see ``ppviz.safe_text``).

- :func:`markdown`: a Markdown pane for text the page composed from its own literals and
  :func:`text` / :func:`code` of anything else. Raw HTML is off and links go to http(s) or
  anchors only, so even a value that missed :func:`text` cannot become an element or a script.
- :class:`SafeDocument`: an untrusted Markdown document (a model card), rendered by
  :func:`ppviz.safe_text.markdown_to_safe_html` (allow-listed tags, no raw HTML, no scripts,
  no event handlers, no ``javascript:`` links) and styled like Panel's Markdown.
- :func:`alert`: an alert box over the same safe Markdown.

``tests/test_security.py`` fails when a page or ``app.py`` builds a Markdown, HTML or Alert pane
any other way.
"""

from __future__ import annotations

import panel as pn

from ppviz.safe_text import escape_code, escape_text, markdown_to_safe_html, safe_link_target

__all__ = ["text", "code", "markdown", "alert", "SafeDocument"]

text = escape_text
code = escape_code

# markdown-it options of every pane built here: raw HTML is rendered as text
_OPTIONS = {"html": False}


def _safe_markdown(md) -> None:
    """markdown-it plugin: links only to http(s) or anchors; images off (they would fetch anywhere)."""
    md.validateLink = safe_link_target
    md.disable("image", ignoreInvalid=True)


def markdown(object: str = "", **params) -> pn.pane.Markdown:
    """A Markdown pane with raw HTML disabled (see the module docstring)."""
    return pn.pane.Markdown(object, renderer_options=dict(_OPTIONS), plugins=[_safe_markdown], **params)


def alert(message: str, kind: str = "danger", **params) -> pn.pane.Alert:
    """An alert box; ``message`` is Markdown built like :func:`markdown`'s."""
    return pn.pane.Alert(message, alert_type=kind, sizing_mode="stretch_width", renderer_options=dict(_OPTIONS),
                         plugins=[_safe_markdown], **params)


class SafeDocument(pn.pane.HTML):
    """An untrusted Markdown document, sanitised (see :func:`ppviz.safe_text.markdown_to_safe_html`)."""

    _stylesheets = pn.pane.Markdown._stylesheets

    def __init__(self, object: str = "", **params):
        params.setdefault("css_classes", ["markdown"])
        super().__init__(object, **params)

    def _transform_object(self, obj) -> dict:
        return super()._transform_object(markdown_to_safe_html("" if obj is None else str(obj)))
