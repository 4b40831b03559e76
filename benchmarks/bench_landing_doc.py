"""Benchmark: the server's side of opening the landing page, one session at a time (no browser).

For each session, as ``panel serve app.py`` does: ``create_app()`` (the pages, the landing's
ensemble from the cache) and then ``server_doc`` (HoloViews and Panel turn the open page into
Bokeh models); it prints the seconds of each, the number of Bokeh models of the document, and
which kinds of model there are most of. The landing run is computed before the first session
(as the server warms it at start), so the figures measure the page, not the model.

With ``--compare-to DIR`` (another checkout of the repository, e.g. ``git archive main | tar -x
-C /tmp/ppviz-main``) the same sessions are built alternately by this tree and by DIR, each in
its own process, and the ratios of the medians are printed: measured in one run under the same
load, they are what to trust on a shared machine.

Run from the repository root::

    .venv/bin/python benchmarks/bench_landing_doc.py [--sessions 5] [--compare-to DIR] [--profile 25]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def measure(sessions: int, profile: int) -> dict:
    """Build ``sessions`` sessions in this process; their times (s) and model counts."""
    sys.path.insert(0, str(REPO))
    warnings.filterwarnings("ignore", "All-NaN slice encountered", RuntimeWarning)
    import importlib
    import importlib.util

    from bokeh.document import Document
    from panel.io.state import set_curdoc

    from ppviz.diffusion.tiny import save_tiny_diffusion
    from ppviz.views import runs as R

    deferred = []
    for module in ("pages.common", "pages.downscale"):  # as a served session: onload work waits for the browser
        module = importlib.import_module(module)
        if hasattr(module, "when_loaded"):
            module.when_loaded = lambda callback: deferred.append(callback) or True

    if not (Path(os.environ["PPVIZ_CHECKPOINTS"]) / "tiny-diffusion").exists():
        save_tiny_diffusion(Path(os.environ["PPVIZ_CHECKPOINTS"]), "tiny-diffusion")
    spec = importlib.util.spec_from_file_location("ppviz_app", REPO / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)  # outside a server: builds one app (imports, data), draws nothing
    job = R.warm()
    if job is not None:
        job.wait(300)
    out = {"create": [], "server_doc": [], "models": [], "after_load": [], "models_after_load": [], "kinds": {}}
    for k in range(sessions + 1):  # the first session warms caches (Store groups, coastlines): not counted
        doc = Document()
        with set_curdoc(doc):
            t0 = time.perf_counter()
            tmpl = app.create_app()
            t1 = time.perf_counter()
            if profile and k == 1:
                import cProfile
                import pstats

                prof = cProfile.Profile()
                prof.enable()
            tmpl.server_doc(doc)
            t2 = time.perf_counter()
            if profile and k == 1:
                prof.disable()
                pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative").print_stats(profile)
            models = len(list(doc.models))
            kinds = collections.Counter(type(m).__name__ for m in doc.models)
            while deferred:  # the browser has loaded the page: the deferred panels are built and sent
                deferred.pop(0)()
            t3 = time.perf_counter()
        if k:
            out["create"].append(t1 - t0)
            out["server_doc"].append(t2 - t1)
            out["models"].append(models)
            out["after_load"].append(t3 - t2)
            out["models_after_load"].append(len(list(doc.models)))
            out["kinds"] = dict(kinds.most_common(14))
    return out


def run_tree(tree: Path, sessions: int, env: dict, profile: int = 0) -> dict:
    cmd = [sys.executable, str(tree / "benchmarks" / "bench_landing_doc.py"), "--inner", str(sessions),
           "--profile", str(profile)]
    if not (tree / "benchmarks" / "bench_landing_doc.py").exists():  # an older checkout: this script, its tree
        cmd[1] = str(Path(__file__).resolve())
        env = dict(env, PPVIZ_BENCH_TREE=str(tree))
    res = subprocess.run(cmd, env=dict(env, PYTHONPATH=str(tree)), cwd=tree, capture_output=True, text=True)
    if res.returncode:
        raise RuntimeError(f"{tree}: {res.stderr[-3000:]}")
    if profile:
        print(res.stderr[-12000:], file=sys.stderr)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    global REPO
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=5, help="sessions measured per process (after one warm-up)")
    ap.add_argument("--rounds", type=int, default=2, help="processes per tree, alternating with --compare-to")
    ap.add_argument("--compare-to", type=Path, help="another checkout to measure alternately (the baseline)")
    ap.add_argument("--profile", type=int, default=0, help="print the top N cProfile entries of one server_doc")
    ap.add_argument("--inner", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.inner is not None:
        if os.environ.get("PPVIZ_BENCH_TREE"):
            REPO = Path(os.environ["PPVIZ_BENCH_TREE"])
        print(json.dumps(measure(args.inner, args.profile)))
        return 0

    tmp = Path(tempfile.mkdtemp(prefix="ppviz-bench-doc-"))
    (tmp / "ckpt").mkdir()
    env = dict(os.environ, PPVIZ_DATA_DIR=str(tmp / "data"), PPVIZ_SYNTH_DAYS="3", PPVIZ_CHECKPOINTS=str(tmp / "ckpt"),
               PPVIZ_DEFAULT_DIFFUSION="tiny-diffusion")
    shared_ne = REPO.parent / "shared" / "natural-earth"
    if shared_ne.is_dir():
        env.setdefault("PPVIZ_NATURAL_EARTH", str(shared_ne))
    trees = {"this tree": REPO} | ({"baseline": args.compare_to.resolve()} if args.compare_to else {})
    results = {name: {"create": [], "server_doc": [], "models": [], "after_load": [], "models_after_load": []}
               for name in trees}
    kinds = {}
    for r in range(args.rounds):
        for name, tree in trees.items():
            res = run_tree(tree, args.sessions, env, args.profile if r == 0 else 0)
            for key in results[name]:
                results[name][key] += res[key]
            kinds[name] = res["kinds"]
    load = os.getloadavg()[0]
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"machine: {os.cpu_count()} CPUs, load average {load:.2f}; synthetic data (3 days), tiny checkpoint, "
          f"{args.rounds} processes x {args.sessions} sessions per tree")
    med = {}
    for name, res in results.items():
        med[name] = {k: statistics.median(v) for k, v in res.items()}
        print(f"{name} ({trees[name]}): create_app median {med[name]['create']:.3f} s, server_doc median "
              f"{med[name]['server_doc']:.3f} s (min {min(res['server_doc']):.3f}, max {max(res['server_doc']):.3f}), "
              f"Bokeh models {min(res['models'])}-{max(res['models'])}; after load (deferred panels) "
              f"{med[name]['after_load']:.3f} s more, {max(res['models_after_load'])} models in all")
        print("  most models: " + ", ".join(f"{k} {v}" for k, v in kinds[name].items()))
    if "baseline" in med:
        a, b = med["this tree"], med["baseline"]
        print(f"ratio this tree / baseline: Bokeh models {a['models'] / b['models']:.2f}, server_doc "
              f"{a['server_doc'] / b['server_doc']:.2f}, create_app {a['create'] / b['create']:.2f}, "
              f"create+server_doc {(a['create'] + a['server_doc']) / (b['create'] + b['server_doc']):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
