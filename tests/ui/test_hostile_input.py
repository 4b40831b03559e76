"""Script payloads from links, typed text and files stay text in a real browser (issue: security).

A separate server (its own checkpoint registry and evaluation root) holds a checkpoint whose model
card, summary and training log carry payloads, a broken checkpoint whose config does, and an
evaluation directory whose name and JSON strings do. Every page is opened with a payload in every
URL parameter the app reads (and a ``javascript:`` value in each), payloads are typed into every
text input, and those files are loaded. After each step: no dialog opened, no payload became an
element or an event handler anywhere in the DOM (shadow roots included), ``window.__ppvizXss``
is unset, the page still answers, the value is shown as text, and the browser reported no
Content-Security-Policy violation (so the policy does not break the app either).
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
import xarray as xr
from playwright.sync_api import expect


REPO = Path(__file__).resolve().parents[2]
expect.set_options(timeout=60_000)
MARK = "__ppvizXss"
IMG = f"<img src=x onerror={MARK}=1;alert(1)>"
SCRIPT = f"<script>window.{MARK}=1;alert(2)</script>"
BREAKOUT = f"\"'><svg onload={MARK}=1>"
JS_URL = f"javascript:window.{MARK}=1;alert(3)"
MD_LINK = f"[click me](javascript:window.{MARK}=1)"
PAGES = range(6)  # Downscale, Pseudo-precipitation, Gibbs, Evaluation, Checkpoints, Data

FIND_INJECTED = """(mark) => {
  const found = [];
  const walk = (root) => {
    for (const el of root.querySelectorAll('*')) {
      const tag = el.tagName.toLowerCase();
      for (const a of el.getAttributeNames()) {
        const v = el.getAttribute(a) || '';
        if (a.startsWith('on') && v.includes(mark)) found.push(`${tag}[${a}]`);
        if (['href', 'src', 'action', 'formaction'].includes(a) && /^\\s*javascript:/i.test(v)) found.push(`${tag}[${a}=javascript:]`);
      }
      if (tag === 'script' && (el.textContent || '').includes(mark)) found.push('script');
      if (tag === 'iframe' || tag === 'object' || tag === 'embed') found.push(tag);
      if (tag === 'img' && el.getAttribute('src') === 'x') found.push('img[src=x]');
      if (tag === 'svg' && el.hasAttribute('onload')) found.push('svg[onload]');
      if (el.shadowRoot) walk(el.shadowRoot);
    }
  };
  walk(document);
  if (window[mark] !== undefined) found.push('window.' + mark + ' was set');
  return found;
}"""


def url_parameters() -> set[str]:
    """Every URL parameter the app reads: the values of each ``sync_url``/``url_state(obj, {...})`` mapping."""
    names = set()
    for path in [REPO / "app.py", *(REPO / "pages").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("sync_url", "url_state") and len(node.args) > 1:
                mapping = node.args[1]
                if isinstance(mapping, ast.Dict):
                    names |= {v.value for v in mapping.values if isinstance(v, ast.Constant)}
    return names


def test_the_url_parameter_list_is_complete():
    """The parameters found are the ones the pages use (so the test below cannot miss a new one)."""
    found = url_parameters()
    assert {"time", "region", "box", "page", "ckpt", "cutoff", "pp_ckpt", "eval_dir", "card", "ckpt_a",
            "source", "src_file", "src_time", "ab_source", "ab_pred"} <= found
    assert len(found) >= 20, found


def _evaluation_dir(root: Path) -> Path:
    """An evaluation directory written by ppviz, then its metrics.json edited as someone else might:
    payloads as a forecast name, a count and settings (netCDF names could not carry them)."""
    from ppviz import evaluation as E

    res = E.EvaluationResult(
        scalars={"crps": {"ensemble": 0.1, "bicubic": 0.2}, "n_times": 1},
        curves=xr.Dataset({"rank_histogram": ("rank", np.array([3, 1, 1, 3]))}, coords={"rank": np.arange(4)}),
        settings={"note": IMG, SCRIPT: MD_LINK, "checkpoint": BREAKOUT})
    out = E.save_evaluation(res, root / f"eval {IMG}")
    doc = json.loads((out / "metrics.json").read_text())
    crps = doc["scalars"]["crps"]
    crps[IMG] = crps.pop("bicubic")
    doc["scalars"]["n_members"] = SCRIPT
    (out / "metrics.json").write_text(json.dumps(doc))
    assert IMG in (out / "metrics.json").read_text()
    return out


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, app_server):
    """A registry and an evaluation root whose texts carry payloads, served by their own app."""
    from ppviz.diffusion.tiny import save_tiny_diffusion

    root = tmp_path_factory.mktemp("hostile")
    ckpts = root / "checkpoints"
    save_tiny_diffusion(ckpts, "tiny-diffusion", summary="tiny untrained U-Net")
    card = save_tiny_diffusion(ckpts, "xss-card", seed=1, summary=f"summary {IMG}")
    (card / "MODEL_CARD.md").write_text(
        f"# xss-card\n\nA [paper](https://arxiv.org/abs/2412.14620), {MD_LINK}, [data](data:text/html,hi).\n\n"
        f"{IMG}\n\n{SCRIPT}\n\n<iframe src=\"{JS_URL}\"></iframe>\n\n| a | b |\n|---|---|\n| {IMG} | x |\n")
    (card / "training_log.jsonl").write_text(json.dumps({"step": 1, "loss": 0.5, "note": SCRIPT}) + "\n")
    broken = save_tiny_diffusion(ckpts, "xss-broken", seed=2)
    doc = json.loads((broken / "config.json").read_text())
    doc["architecture"] = IMG
    (broken / "config.json").write_text(json.dumps(doc))
    evaluation = _evaluation_dir(root)
    env = {"PPVIZ_CHECKPOINTS": str(ckpts), "PPVIZ_DEFAULT_DIFFUSION": "tiny-diffusion", "PPVIZ_EVAL_ROOTS": str(root)}
    with app_server(env, "panel-serve-hostile.log") as url:
        yield {"url": url, "evaluation": evaluation}


@pytest.fixture
def watched(page):
    """The page, with dialogs, script errors and CSP reports recorded."""
    page.set_viewport_size({"width": 1600, "height": 2400})
    page.set_default_timeout(90_000)
    seen = {"dialogs": [], "csp": []}

    def dialog(d):
        seen["dialogs"].append(d.message)
        d.dismiss()

    page.on("dialog", dialog)
    page.on("console", lambda m: seen["csp"].append(m.text) if "Content Security Policy" in m.text else None)
    page.seen = seen
    return page


def _clean(page, where: str):
    page.wait_for_timeout(500)  # let anything injected fire
    injected = page.evaluate(FIND_INJECTED, MARK)
    assert not injected, f"{where}: payload reached the DOM as markup: {injected}"
    assert not page.seen["dialogs"], f"{where}: a dialog opened: {page.seen['dialogs']}"
    assert not page.seen["csp"], f"{where}: CSP violations: {page.seen['csp']}"
    expect(page.get_by_text("Device:").first).to_be_visible()  # the app still answers


def _open(page, url, params: dict):
    page.goto(url + "?" + "&".join(f"{k}={quote(str(v), safe='')}" for k, v in params.items()))
    expect(page.get_by_text("Device:").first).to_be_visible()


@pytest.mark.parametrize("index", PAGES)
def test_payloads_in_every_url_parameter_stay_text(watched, hostile, index):
    page = watched
    names = url_parameters() - {"page"}
    for payload in (IMG, SCRIPT, JS_URL):
        _open(page, hostile["url"], {**{n: payload for n in names}, "page": index})
        # the page names the ignored values, as text
        expect(page.get_by_text("Ignored URL settings").first).to_be_visible()
        shown = payload if payload != SCRIPT else f"window.{MARK}=1;alert(2)</script>"
        expect(page.get_by_text(shown, exact=False).first).to_be_visible()
        _clean(page, f"page {index}, URL payload {payload!r}")


def test_a_predictions_source_named_by_payloads_stays_text(watched, hostile):
    """A predictions file as the Downscale source or the A/B's B, its path, variable and time payloads:
    refused (outside the roots) with the path shown as text."""
    page = watched
    for index, params in ((0, {"source": "predictions", "src_file": IMG, "src_var": SCRIPT, "src_time": BREAKOUT}),
                          (4, {"ab_source": "predictions", "ab_pred": IMG, "ab_var": SCRIPT, "ab_units": MD_LINK})):
        _open(page, hostile["url"], {"page": index, "region": "sample", **params})
        expect(page.get_by_text(re.compile("is outside the directories evaluations may be read from")).first
               ).to_be_visible()
        expect(page.get_by_text(IMG, exact=False).filter(visible=True).first).to_be_visible()
        _clean(page, f"page {index}, predictions source {params}")


def test_a_payload_as_the_page_parameter(watched, hostile):
    page = watched
    _open(page, hostile["url"], {"page": IMG, "region": BREAKOUT, "box": MD_LINK})
    expect(page.get_by_text("Ignored URL settings").first).to_be_visible()
    _clean(page, "page parameter")


def _text_inputs(page):
    return page.locator("input[type=text]:visible:not([readonly])")  # the date picker is readonly


def test_payloads_typed_into_every_text_input_stay_text(watched, hostile):
    page = watched
    for index in (0, 3):  # the pages with text inputs: region box (every page's shared state), evaluation
        _open(page, hostile["url"], {"page": index, "region": "sample", "members": 2, "steps": 3})
        inputs = _text_inputs(page)
        assert inputs.count() >= (1 if index == 0 else 4)
        for i in range(inputs.count()):
            for payload in (IMG, MD_LINK):
                inputs.nth(i).fill(payload)
                inputs.nth(i).press("Enter")
                _clean(page, f"page {index}, input {i}, typed {payload!r}")
        if index == 0:
            # the box input selects the custom region and its parser quotes the value back
            expect(page.get_by_text(re.compile(r"\[click me\]\(javascript:")).first).to_be_visible()
        else:
            page.get_by_role("button", name="Evaluate range").click()
            _clean(page, "evaluate with payload times")
            page.get_by_role("button", name="Load directory").click()
            expect(page.get_by_text(re.compile(r"\[click me\]\(javascript:")).first).to_be_visible()
            _clean(page, "load a payload directory name")


def test_an_evaluation_directory_with_payloads_loads_as_text(watched, hostile):
    page = watched
    _open(page, hostile["url"], {"page": 3})
    box = page.get_by_role("textbox", name=re.compile("Directory"))
    box.fill(str(hostile["evaluation"]))
    box.press("Enter")
    page.get_by_role("button", name="Load directory").click()
    expect(page.get_by_text(re.compile(r"^Loaded .*eval <img src=x")).first).to_be_visible()
    expect(page.get_by_text(re.compile(r"note: <img src=x onerror=")).first).to_be_visible()
    expect(page.get_by_role("cell", name=IMG)).to_be_visible()  # a payload as a forecast name
    _clean(page, "evaluation directory")


def test_checkpoint_texts_with_payloads_show_as_text(watched, hostile):
    page = watched
    _open(page, hostile["url"], {"page": 4, "card": "xss-card"})
    expect(page.get_by_role("heading", name="xss-card")).to_be_visible()  # the card's own Markdown still renders
    expect(page.get_by_role("link", name="paper")).to_have_attribute("href", "https://arxiv.org/abs/2412.14620")
    expect(page.get_by_role("link", name="click me")).to_have_count(0)  # javascript: link: shown as text
    expect(page.get_by_text(IMG).filter(visible=True).first).to_be_visible()  # not the picker's <option>
    expect(page.get_by_text(SCRIPT).filter(visible=True).first).to_be_visible()
    expect(page.get_by_role("cell", name=f"summary {IMG}")).to_be_visible()  # registry table
    expect(page.get_by_text(re.compile(r"broken: .*<img src=x")).first).to_be_visible()
    _clean(page, "checkpoints page")
    page.screenshot(path=str(REPO / "tests" / "ui" / "screenshots" / "checkpoints_hostile_card.png"))
    # the payload checkpoint also drives a run on the Downscale page (its summary is in the picker)
    _open(page, hostile["url"], {"page": 0, "region": "sample", "ckpt": "xss-card", "members": 2, "steps": 3})
    page.get_by_role("button", name="Run ensemble").click()
    expect(page.get_by_text(re.compile(r"computed in")).first).to_be_visible()
    _clean(page, "run with the payload checkpoint")
