"""Untrusted text shown in Markdown or HTML: escaped, never interpreted.

ppviz shows strings it did not write: URL values, typed text, file and directory names, error
messages that quote them, dataset attributes, checkpoint configs, model cards, evaluation JSON.
Any of them may carry markup (``<img src=x onerror=...>``) or Markdown (``[x](javascript:...)``).
Two rules, one module:

- :func:`escape_text` turns a value into Markdown that renders as exactly that text (every HTML
  and Markdown metacharacter escaped, line breaks folded); :func:`escape_code` does the same as an
  inline code span. Page code builds its Markdown from its own literals plus these.
- :func:`markdown_to_safe_html` renders a Markdown *document* from a file (a model card) with raw
  HTML disabled, links only to http(s) or in-page anchors, images shown as their alt text, and the
  result passed through an allow-list sanitiser (``nh3``) as a second layer.

Pure Python, no Panel: the pages wrap these in panes (``pages/safe.py``).
"""

from __future__ import annotations

import html
import re
from functools import lru_cache

__all__ = ["escape_text", "escape_code", "markdown_to_safe_html", "safe_link_target", "ALLOWED_TAGS"]

# Every ASCII punctuation character that CommonMark lets a backslash escape and that could start
# markup (emphasis, links, code, headings, lists, tables, autolinks, entities).
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>=:])")
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029]+")

# What a rendered model card may contain.
ALLOWED_TAGS = frozenset({
    "a", "p", "br", "hr", "em", "strong", "del", "s", "code", "pre", "blockquote",
    "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li",
    "table", "thead", "tbody", "tr", "th", "td",
})
_ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "th": {"style"}, "td": {"style"}, "ol": {"start"}}
_SAFE_SCHEMES = ("http://", "https://")


def escape_text(value: object) -> str:
    """Markdown that renders as the literal text of ``value`` (one line).

    HTML metacharacters become entities (so ``<script>`` shows as ``<script>``, never as an
    element), Markdown punctuation is backslash-escaped (so ``[a](javascript:x)`` stays text, not
    a link), and line breaks become spaces (so a value cannot start a heading or a table row).

    Examples
    --------
    >>> escape_text("<b>x</b>")
    '&lt;b&gt;x&lt;/b&gt;'
    """
    text = _LINE_BREAKS.sub(" ", str(value))
    # named entities only (&lt; &gt; &amp;): a numeric one (&#x27;) would lose its '#' below
    text = html.escape(text, quote=False)
    # escape Markdown after HTML: the entities' '&' and ';' are not Markdown punctuation
    return _MD_SPECIAL.sub(r"\\\1", text)


def escape_code(value: object) -> str:
    """``value`` as a Markdown inline code span (one line), whatever backticks it contains.

    CommonMark renders a code span's content literally (HTML-escaped); the fence is one backtick
    longer than the longest run inside, and padded with spaces when the value touches a backtick.
    """
    text = _LINE_BREAKS.sub(" ", str(value))
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def safe_link_target(url: str) -> bool:
    """Whether a link in rendered Markdown may point at ``url``: http(s) or an in-page anchor."""
    u = url.strip().lower()
    return u.startswith(_SAFE_SCHEMES) or (u.startswith("#") and len(u) > 1)


@lru_cache(maxsize=1)
def _card_parser():
    from markdown_it import MarkdownIt

    # CommonMark with GFM tables and strikethrough; raw HTML off (shown as text), no linkify
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.disable("image")  # an image would fetch from anywhere: its alt text and target show as a link
    md.validateLink = safe_link_target
    return md


def markdown_to_safe_html(markdown: str) -> str:
    """HTML of an untrusted Markdown document (a model card): formatting kept, markup defused.

    Kept: headings, paragraphs, emphasis, lists, tables, code spans and blocks, block quotes,
    links to ``http(s)://`` or ``#anchor`` (opened with ``rel="noopener noreferrer nofollow"``).
    Defused: raw HTML (shown as text), ``javascript:``/``data:``/``file:`` and every other link
    scheme (shown as text), images (shown as links to their target, if that is http(s)).
    The parser's output then goes through the ``nh3`` allow-list sanitiser (tags in
    :data:`ALLOWED_TAGS`, no event handlers, no ``style`` but table cell alignment).
    """
    import nh3

    rendered = _card_parser().render(str(markdown))
    return nh3.clean(
        rendered,
        tags=set(ALLOWED_TAGS),
        attributes={k: set(v) for k, v in _ALLOWED_ATTRIBUTES.items()},
        url_schemes={"http", "https"},
        link_rel="noopener noreferrer nofollow",
        filter_style_properties={"text-align"},
    )
