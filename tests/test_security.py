"""Untrusted text never becomes markup: the escaping helpers, the model-card renderer, and a check
that every page builds its Markdown/HTML panes through ``pages/safe.py``.

The browser side (payloads in URLs, inputs and files, no dialog, no element) is
``tests/ui/test_hostile_input.py``.
"""

from __future__ import annotations

import ast
import html
from html.parser import HTMLParser
from pathlib import Path

import pytest

from ppviz.safe_text import ALLOWED_TAGS, escape_code, escape_text, markdown_to_safe_html, safe_link_target

REPO = Path(__file__).resolve().parents[1]

PAYLOADS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '"><svg onload=alert(1)>',
    "<iframe src=javascript:alert(1)></iframe>",
    "[click](javascript:alert(1))",
    "![x](https://evil.example/x.png)",
    "<a href='javascript:alert(1)'>x</a>",
    "`</code><script>alert(1)</script>`",
    "line one\n# heading\n| a | b |",
    "&lt;img src=x onerror=alert(1)&gt;",
    "javascript:alert(1)",
]


class _Tags(HTMLParser):
    """Every start tag with its attributes."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def tags_of(rendered: str) -> list[tuple[str, dict]]:
    p = _Tags()
    p.feed(rendered)
    return p.tags


def _render_like_the_pages(md: str) -> str:
    """What pages/safe.py's Markdown panes send to the browser for ``md``."""

    from pages.safe import markdown

    return html.unescape(markdown(md)._transform_object(md)["object"])


def _visible_text(rendered: str) -> str:
    class T(HTMLParser):
        out = ""

        def handle_data(self, data):
            self.out += data

    t = T()
    t.feed(rendered)
    return t.out.strip()


@pytest.mark.parametrize("payload", PAYLOADS)
def test_escaped_text_renders_as_the_literal_text(payload):
    rendered = _render_like_the_pages(escape_text(payload))
    assert [t for t, _ in tags_of(rendered)] == ["p"], rendered
    assert _visible_text(rendered) == " ".join(payload.splitlines())


@pytest.mark.parametrize("payload", PAYLOADS)
def test_escaped_code_renders_as_one_code_span(payload):
    rendered = _render_like_the_pages("see " + escape_code(payload))
    assert [t for t, _ in tags_of(rendered)] == ["p", "code"], rendered
    assert _visible_text(rendered).removeprefix("see ").strip() == " ".join(payload.splitlines()).strip()


def test_a_missed_escape_still_makes_no_element():
    """Defence in depth: the page panes render raw HTML as text and refuse javascript: links."""
    for payload in PAYLOADS:
        rendered = _render_like_the_pages(f"Loaded {payload}")
        for tag, attrs in tags_of(rendered):
            assert tag in ALLOWED_TAGS, (payload, rendered)
            assert not any(k.startswith("on") for k in attrs), rendered
            assert "javascript" not in attrs.get("href", ""), rendered


CARD = """# tiny-model
Some *emphasis*, **bold**, `code <b>`, a [paper](https://arxiv.org/abs/2412.14620) and [top](#tiny-model).

| metric | value |
|:--|--:|
| CRPS | 0.01 |

```
block <script>alert(1)</script>
```

<img src=x onerror=alert(1)>
<script>alert(2)</script>
<iframe src="javascript:alert(3)"></iframe>
[js](javascript:alert(4)) [data](data:text/html;base64,PHNjcmlwdD4=) [vb](vbscript:x) [file](file:///etc/passwd)
![pixel](https://tracker.example/p.png)
<a href="javascript:alert(5)" onclick="alert(6)">raw link</a>
"""


def test_model_cards_keep_formatting_and_lose_markup():
    out = markdown_to_safe_html(CARD)
    tags = tags_of(out)
    names = {t for t, _ in tags}
    assert names <= ALLOWED_TAGS, names - ALLOWED_TAGS
    assert {"h1", "em", "strong", "code", "pre", "table", "th", "td", "a"} <= names  # formatting kept
    for tag, attrs in tags:
        assert not any(k.lower().startswith("on") for k in attrs), (tag, attrs)
        if "href" in attrs:
            assert safe_link_target(attrs["href"]), attrs
    hrefs = [a["href"] for t, a in tags if t == "a"]
    assert "https://arxiv.org/abs/2412.14620" in hrefs and "#tiny-model" in hrefs
    assert all(h.startswith(("https://arxiv", "#", "https://tracker")) for h in hrefs), hrefs
    text = _visible_text(out)
    # the payloads are still there to read, as text
    assert "<img src=x onerror=alert(1)>" in text and "<script>alert(2)</script>" in text
    assert "[js](javascript:alert(4))" in text


@pytest.mark.parametrize("url,ok", [("https://a.org", True), ("http://a.org/x?y", True), ("#anchor", True),
                                    ("javascript:alert(1)", False), (" JavaScript:alert(1)", False),
                                    ("data:text/html,x", False), ("vbscript:x", False), ("file:///etc", False),
                                    ("//evil.org", False), ("#", False), ("relative/path", False)])
def test_link_targets(url, ok):
    assert safe_link_target(url) is ok


def _pane_calls(path: Path) -> list[str]:
    """``pn.pane.Markdown(...)``-style calls (also via aliases of ``pn.pane``) in ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in {"Markdown", "HTML", "Alert", "Str", "LaTeX"}:
            owner = ast.unparse(node.value)
            if owner.endswith("pane") or owner in {"pn", "panel"}:
                bad.append(f"{path.relative_to(REPO)}:{node.lineno} {owner}.{node.attr}")
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("panel.pane"):
            bad.append(f"{path.relative_to(REPO)}:{node.lineno} from {node.module} import ...")
    return bad


def test_pages_build_text_panes_only_through_pages_safe():
    files = [p for p in (REPO / "pages").glob("*.py") if p.name != "safe.py"] + [REPO / "app.py"]
    bad = [c for f in files for c in _pane_calls(f)]
    assert not bad, "build Markdown/HTML/Alert panes with pages.safe (markdown, alert, SafeDocument): " + "; ".join(bad)
