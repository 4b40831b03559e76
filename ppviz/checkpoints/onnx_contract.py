"""ONNX checkpoints: a denoiser exported to ``model.onnx`` with its contract in ``config.json``.

A directory ``NAME/`` holding ``model.onnx``, ``config.json`` and ``MODEL_CARD.md`` is a
checkpoint of architecture ``onnx-denoiser`` (``weights.format == "onnx"``). Its ``config`` is
the **contract** that lets ppviz drive any network exported this way, ppviz's own or not:

- ``graph``: ``"edm-denoiser"``. The graph is the *whole* denoiser ``D(x; sigma, cond)``, EDM
  preconditioning included (``c_skip``, ``c_out``, ``c_in``, ``c_noise`` are computed inside the
  graph from ``sigma``; EDM eq. 7), so ppviz's samplers call it exactly as they call
  :class:`ppviz.diffusion.EDMPrecond`. A raw network ``F`` is not accepted: wrap it before export.
- ``inputs``: in this order, ``x`` ``[batch, 1, height, width]`` (the noisy target),
  ``sigma`` ``[batch]`` (noise level per member), ``cond`` ``[batch, C, height, width]`` (the
  conditioning channels named in ``cond_channels``), all ``float32``; ``outputs``: ``denoised``
  ``[batch, 1, height, width]`` float32. Batch, height and width are dynamic axes.
- ``cond_channels``: ``["coarse_up", *static names]``; ``static_channels``: ``{"names": [...],
  "provided": "input"}``: static fields are graph inputs (ppviz computes them for the chosen grid,
  :func:`ppviz.diffusion.static_channels`), never baked into the graph.
- ``sigma_data`` (EDM's data std, > 0), ``factor`` (fine cells per coarse cell), ``upsample``
  (``bilinear``/``nearest``), ``residual`` (the graph generates ``fine - up(coarse)``),
  ``size_multiple`` (height and width the graph accepts are multiples of it; ppviz pads
  (reflect) and crops around the call), ``noise_schedule`` (``karras``: ``sigma_min``,
  ``sigma_max``, ``rho``, default ``steps``, ``sampler``).

Loading reads only files inside the directory: ``model.onnx`` must not be a symlink leading out;
external-data tensors must name plain files inside the directory (recorded with their sha256);
every node must use a standard ONNX domain or a function defined in the model (no custom op
libraries are ever registered, so nothing but onnxruntime's own kernels runs; no Python runs).
This module needs ``onnx`` (a protobuf reader), not torch or onnxruntime.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

from ppviz.checkpoints.format import CheckpointError, NAME_RE

ONNX_FILE = "model.onnx"
ARCHITECTURE = "onnx-denoiser"
GRAPH = "edm-denoiser"
INPUT_NAMES = ("x", "sigma", "cond")
OUTPUT_NAMES = ("denoised",)
#: ONNX domains a graph may use: the standard operator sets and onnxruntime's contrib ops.
STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "com.microsoft"})
UPSAMPLE = ("bilinear", "nearest")
SCHEDULES = ("karras",)
SAMPLERS = ("heun", "euler_maruyama")
_ONNX_DTYPES = {1: "float32"}  # onnx.TensorProto.FLOAT


def contract_inputs(cond_channels: int) -> list[dict]:
    """The ``inputs`` entry of a contract for ``cond_channels`` conditioning channels."""
    return [
        {"name": "x", "shape": ["batch", 1, "height", "width"], "dtype": "float32",
         "meaning": "noisy generated target x = y + sigma * n"},
        {"name": "sigma", "shape": ["batch"], "dtype": "float32", "meaning": "noise level of each batch row"},
        {"name": "cond", "shape": ["batch", cond_channels, "height", "width"], "dtype": "float32",
         "meaning": "conditioning channels, in the order of cond_channels"},
    ]


CONTRACT_OUTPUTS = [{"name": "denoised", "shape": ["batch", 1, "height", "width"], "dtype": "float32",
                     "meaning": "D(x; sigma, cond), the denoised target"}]


def _need(cond: bool, where: str, text: str) -> None:
    if not cond:
        raise CheckpointError(f"{where}: config.json's contract {text}")


def check_contract(config: Mapping, where: str) -> dict:
    """The contract ``config`` checked key by key; CheckpointError naming the first fault.

    Returns the contract as a plain dict with ``noise_schedule`` defaults filled in.
    """
    _need(isinstance(config, Mapping), where, "is not an object")
    c = dict(config)
    _need(c.get("graph") == GRAPH, where,
          f"has graph {c.get('graph')!r}; ppviz runs only {GRAPH!r} (EDM preconditioning inside the graph)")
    names = c.get("cond_channels")
    _need(isinstance(names, list) and names and all(isinstance(n, str) and NAME_RE.match(n) for n in names),
          where, f"has cond_channels {names!r}; need a non-empty list of channel names")
    _need(names[0] == "coarse_up", where, f"has cond_channels starting with {names[0]!r}; the first must be "
                                          "'coarse_up' (the upsampled coarse field)")
    static = c.get("static_channels")
    _need(isinstance(static, Mapping) and isinstance(static.get("names"), list), where,
          "lacks static_channels {names: [...], provided: 'input'}")
    _need(list(static["names"]) == list(names[1:]), where,
          f"lists static_channels {static['names']} but cond_channels after coarse_up are {names[1:]}")
    _need(static.get("provided") == "input", where,
          f"has static_channels provided {static.get('provided')!r}; only 'input' is supported (ppviz "
          "computes the static fields of the chosen grid and passes them in cond)")
    inputs, outputs = c.get("inputs"), c.get("outputs")
    _need(isinstance(inputs, list) and [i.get("name") if isinstance(i, Mapping) else None for i in inputs]
          == list(INPUT_NAMES), where, f"must list inputs named {list(INPUT_NAMES)} in that order; got "
                                       f"{[i.get('name') if isinstance(i, Mapping) else i for i in inputs or []]}")
    want = contract_inputs(len(names))
    for got, exp in zip(inputs, want):
        _need(list(got.get("shape", [])) == exp["shape"] and got.get("dtype") == "float32", where,
              f"declares input {got['name']!r} as {got.get('shape')} {got.get('dtype')}; "
              f"expected {exp['shape']} float32")
    _need(isinstance(outputs, list) and len(outputs) == 1 and isinstance(outputs[0], Mapping)
          and outputs[0].get("name") == "denoised", where, "must list one output named 'denoised'")
    for key, ok, rule in (
        ("sigma_data", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0, "a number > 0"),
        ("factor", lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 64, "an integer 1..64"),
        ("size_multiple", lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 1024,
         "an integer 1..1024"),
        ("residual", lambda v: isinstance(v, bool), "true or false"),
        ("upsample", lambda v: v in UPSAMPLE, f"one of {list(UPSAMPLE)}"),
    ):
        _need(key in c and ok(c[key]), where, f"has {key} {c.get(key)!r}; need {rule}")
    sched = dict(c.get("noise_schedule") or {})
    sched = {"kind": "karras", "sigma_min": 0.002, "sigma_max": 80.0, "rho": 7.0, "steps": 18, "sampler": "heun",
             **sched}
    _need(sched["kind"] in SCHEDULES and sched["sampler"] in SAMPLERS, where,
          f"has noise_schedule {sched}; kind must be one of {list(SCHEDULES)}, sampler one of {list(SAMPLERS)}")
    _need(all(isinstance(sched[k], (int, float)) for k in ("sigma_min", "sigma_max", "rho"))
          and 0 < sched["sigma_min"] < sched["sigma_max"] and sched["rho"] > 0, where,
          f"has noise_schedule {sched}; need 0 < sigma_min < sigma_max and rho > 0")
    c["noise_schedule"] = sched
    return c


def _inside(path: Path, root: Path, where: str, what: str) -> Path:
    real = path.resolve()
    if not real.is_relative_to(root.resolve()):
        raise CheckpointError(f"{where}: {what} {path.name!r} leads outside the checkpoint directory "
                              f"(to {real}); refused")
    return real


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_onnx_model(path: Path, doc: Mapping, where: str):
    """The checked ``onnx.ModelProto`` of the ONNX checkpoint directory ``path`` (external data loaded).

    Checks, in order: ``model.onnx`` inside the directory and of the recorded sha256; it parses
    as ONNX; every external-data file a plain name inside the directory, listed in
    ``weights.external`` with its sha256; only standard domains or the model's own functions;
    graph inputs and outputs equal to the contract (names, order, ranks, float32). Raises
    CheckpointError naming the fault.
    """
    import onnx
    from onnx.external_data_helper import load_external_data_for_model, uses_external_data

    weights = doc["weights"]
    f = path / ONNX_FILE
    _inside(f, path, where, "model file")
    sha = _sha(f)
    if sha != str(weights.get("sha256")):
        raise CheckpointError(f"{where}: {ONNX_FILE} was modified after it was written: its sha256 is "
                              f"{sha[:16]}..., config.json records {str(weights.get('sha256'))[:16]}...")
    try:
        model = onnx.load(str(f), load_external_data=False)
    except Exception as e:  # protobuf's DecodeError and friends
        raise CheckpointError(f"{where}: {ONNX_FILE} is not a valid ONNX model ({type(e).__name__}: {e})") from None
    recorded = weights.get("external") or {}
    locations = set()
    for t in list(model.graph.initializer):
        if uses_external_data(t):
            loc = next((e.value for e in t.external_data if e.key == "location"), "")
            locations.add(loc)
    for loc in sorted(locations):
        if not NAME_RE.match(loc) or ".." in loc:
            raise CheckpointError(f"{where}: {ONNX_FILE} stores tensors in external file {loc!r}, which is not a "
                                  "plain file name inside the checkpoint directory; refused")
        ext = path / loc
        if not ext.is_file():
            raise CheckpointError(f"{where}: {ONNX_FILE} needs external data file {loc!r}, which is missing")
        _inside(ext, path, where, "external data file")
        if loc not in recorded or _sha(ext) != recorded[loc]:
            raise CheckpointError(f"{where}: external data file {loc!r} is not recorded in config.json's "
                                  "weights.external or its sha256 differs; refused")
    if locations:
        load_external_data_for_model(model, str(path))
    own = {fn.domain for fn in model.functions}
    bad = sorted({n.domain for n in model.graph.node if n.domain not in STANDARD_DOMAINS | own}
                 | {o.domain for o in model.opset_import if o.domain not in STANDARD_DOMAINS | own})
    if bad:
        raise CheckpointError(f"{where}: {ONNX_FILE} uses custom operator domains {bad}; ppviz runs only standard "
                              f"ONNX domains {sorted(STANDARD_DOMAINS)} (no custom op libraries)")
    _check_io(model, doc["config"], where)
    return model


def _io(values) -> list[tuple[str, int, int]]:
    return [(v.name, v.type.tensor_type.elem_type, len(v.type.tensor_type.shape.dim)) for v in values]


def _check_io(model, contract: Mapping, where: str) -> None:
    init = {t.name for t in model.graph.initializer}
    ins = [v for v in _io(model.graph.input) if v[0] not in init]
    outs = _io(model.graph.output)
    want_in = [(i["name"], 1, len(i["shape"])) for i in contract["inputs"]]
    want_out = [(o["name"], 1, len(o["shape"])) for o in contract["outputs"]]

    def show(items):
        return [f"{n} (rank {r}, {_ONNX_DTYPES.get(t, f'onnx type {t}')})" for n, t, r in items]

    if ins != want_in:
        raise CheckpointError(f"{where}: {ONNX_FILE}'s inputs {show(ins)} do not match the contract's "
                              f"{show(want_in)}")
    if outs != want_out:
        raise CheckpointError(f"{where}: {ONNX_FILE}'s outputs {show(outs)} do not match the contract's "
                              f"{show(want_out)}")
    cond = model.graph.input[[v.name for v in model.graph.input].index("cond")].type.tensor_type.shape.dim[1]
    n = len(contract["cond_channels"])
    if cond.HasField("dim_value") and cond.dim_value != n:
        raise CheckpointError(f"{where}: {ONNX_FILE} takes {cond.dim_value} cond channels but the contract "
                              f"names {n}: {contract['cond_channels']}")
