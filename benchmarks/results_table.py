"""PP diffusion vs TP diffusion vs bicubic vs PP-bicubic on held-out synthetic dates: the results table.

The paper's central claim as an experiment: the same EDM downscaler (architecture, data, crops,
steps, sampler) trained on PP (``edm-pp-v2`` by default; ``--pp-model``) and on a transform of tp
without PP (``edm-tp-v2``; ``--tp-model``, :mod:`ppviz.tp_target`), scored on the same held-out times against the same
truth, beside the deterministic bicubic (tp) and PP-bicubic baselines.

Held-out times: the days :func:`ppviz.training.pp.split_times` (fraction 0.2) holds out of the
embedded synthetic dataset (every 5th of its 60 days, never seen in training by either model),
``--dates`` time steps spread evenly over them. Every number comes from
:class:`ppviz.metrics.EnsembleAccumulator` (fair CRPS for ensembles, MAE for deterministic
forecasts; log-spectral distance; pooled quantiles; wet-hour frequency) and, for the Gibbs
column, :func:`ppviz.metrics.gibbs_comparison` of the truth (TP truncated vs PP truncated then
decoded, at the 1 deg scale).

Usage (repository root)::

    .venv/bin/python benchmarks/results_table.py --dates 60 --regions alps,british-isles \\
        --members 4 --steps 18 --out benchmarks/results.md [--keep DIR] [--pp-model edm-pp-v1 --tp-model edm-tp-v1]

``--keep DIR`` also writes each run's ``ppviz downscale``-style output (``DIR/<region>-<model>.nc``)
for ``ppviz evaluate``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def heldout_times(ds, n: int, fraction: float = 0.2):
    """``n`` time steps spread evenly over the held-out days of ``split_times``."""
    from ppviz.training.pp import split_times

    _, held = split_times(ds.time.values, fraction)
    t = ds.time.values[held]
    if n > t.size:
        raise SystemExit(f"only {t.size} held-out time steps; asked for {n}")
    return list(t[np.unique(np.linspace(0, t.size - 1, n).round().astype(int))])


def score(run, baselines):
    """EnsembleMetrics.scalars of one downscale output (members + the named baselines)."""
    from ppviz.metrics import EnsembleAccumulator, evaluate_chunks, from_pipeline

    data = from_pipeline(run)[["members", "truth", *baselines]]
    acc = evaluate_chunks(data, EnsembleAccumulator(baselines=tuple(baselines), fss=False,
                                                    wet_thresholds=(1e-6, 0.1, 1.0, 5.0)), time_chunk=8)
    return acc.compute().scalars


def paired_crps_difference(run_a, run_b, *, n_boot: int = 2000, seed: int = 0) -> dict:
    """Mean over time steps of CRPS(b) - CRPS(a) (domain-mean fair CRPS per step), with a 95 %
    paired bootstrap interval over the time steps (both runs share the times and the truth)."""
    from ppviz.metrics import crps_ensemble

    a = crps_ensemble(run_a["tp"], run_a["tp_truth"]).mean(("lat", "lon")).values
    b = crps_ensemble(run_b["tp"], run_b["tp_truth"]).mean(("lat", "lon")).values
    d = b - a
    rng = np.random.default_rng(seed)
    boots = d[rng.integers(0, d.size, size=(n_boot, d.size))].mean(axis=1)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return {"mean": float(d.mean()), "lo": float(lo), "hi": float(hi), "n": int(d.size),
            "b_better": int((d < 0).sum())}


def rows_for_region(region, runs, gibbs, names=("edm-pp-v2", "edm-tp-v2")):
    """Table rows (dicts) of one region: truth, PP diffusion, TP diffusion, bicubic, PP-bicubic;
    ``names``: the PP and TP checkpoints, for the labels."""
    pp, tp = runs["pp"], runs["tp"]
    tq = pp["quantiles"]["truth"]

    def row(name, s, src, kind):
        q = s["quantiles"][src]
        w = s["wet_frequency"][src]
        out = {"region": region, "method": name, "kind": kind, "crps": s["crps"].get(src, float("nan")),
               "lsd_25_100": s["lsd_db"].get(src, {}).get("25-100 km", float("nan")),
               "lsd_50_200": s["lsd_db"].get(src, {}).get("50-200 km", float("nan")),
               "p99_ratio": q["0.99"] / tq["0.99"], "p999_ratio": q["0.999"] / tq["0.999"],
               "wet_0": w["1e-06"], "wet_0.1": w["0.1"], "wet_1": w["1"], "wet_5": w["5"],
               "ssr": s["spread_skill_ratio"] if kind == "ensemble" else float("nan")}
        return out

    truth = {"region": region, "method": "truth", "kind": "", "crps": float("nan"), "lsd_25_100": 0.0,
             "lsd_50_200": 0.0, "p99_ratio": 1.0, "p999_ratio": 1.0, "ssr": float("nan"),
             **{f"wet_{t}": pp["wet_frequency"]["truth"][t] for t in ("0.1", "1", "5")},
             "wet_0": pp["wet_frequency"]["truth"]["1e-06"],
             "p99": tq["0.99"], "p999": tq["0.999"]}
    return [truth,
            row(f"PP diffusion ({names[0]})", pp, "ensemble", "ensemble"),
            row(f"TP diffusion ({names[1]})", tp, "ensemble", "ensemble"),
            row("bicubic (tp)", pp, "bicubic", "deterministic"),
            row("PP-bicubic", pp, "pp_bicubic", "deterministic")], gibbs


def _f(v, fmt):
    return "-" if v is None or not np.isfinite(v) else format(v, fmt)


def markdown(all_rows, gibbs_by_region, meta) -> str:
    head = ("| region | method | CRPS / MAE (mm/h) | LSD 25-100 km (dB) | LSD 50-200 km (dB) | p99 ratio | "
            "p99.9 ratio | any rain (> 1e-6 mm/h) | wet >= 0.1 mm/h | wet >= 1 mm/h | wet >= 5 mm/h | spread/skill |")
    lines = [head, "|" + "---|" * 12]
    for r in all_rows:
        extra = f" ({r['p99']:.2f} / {r['p999']:.2f} mm/h)" if r["method"] == "truth" else ""
        lines.append(
            f"| {r['region']} | {r['method']}{extra} | {_f(r['crps'], '.4f')} | {_f(r['lsd_25_100'], '.2f')} | "
            f"{_f(r['lsd_50_200'], '.2f')} | {_f(r['p99_ratio'], '.2f')} | {_f(r['p999_ratio'], '.2f')} | "
            f"{_f(r['wet_0'], '.3f')} | {_f(r['wet_0.1'], '.4f')} | {_f(r['wet_1'], '.4f')} | {_f(r['wet_5'], '.5f')} | {_f(r['ssr'], '.2f')} |")
    g = ["", "Gibbs (truth fields, spectral truncation at the 1 deg scale, 222 km, DCT): fraction of negative cells",
         "", "| region | TP truncated | PP truncated, then decoded | spurious drizzle TP / PP route | "
             "most negative TP truncated (mm/h) |", "|---|---|---|---|---|"]
    for region, gb in gibbs_by_region.items():
        if "skipped" in gb:
            g.append(f"| {region} | skipped: {gb['skipped']} | | | |")
            continue
        a, b = gb["tp_truncated"], gb["pp_truncated_decoded"]
        g.append(f"| {region} | {100 * a['negative_fraction']:.2f} % | {100 * b['negative_fraction']:.2f} % | "
                 f"{100 * a['spurious_drizzle_fraction']:.2f} % / {100 * b['spurious_drizzle_fraction']:.2f} % | "
                 f"{a['min_value']:.3f} |")
    return "\n".join([*meta, "", *lines, *g, ""])


def markdown_diff(diffs: dict) -> str:
    out = ["", "Paired CRPS difference TP diffusion - PP diffusion (domain-mean fair CRPS per time step; "
           "negative = TP diffusion better), 95 % bootstrap interval over the time steps:", "",
           "| region | mean difference (mm/h) | 95 % interval | steps where TP diffusion is better |", "|---|---|---|---|"]
    for region, d in diffs.items():
        out.append(f"| {region} | {d['mean']:+.4f} | [{d['lo']:+.4f}, {d['hi']:+.4f}] | {d['b_better']} of {d['n']} |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dates", type=int, default=30, help="held-out time steps per region")
    p.add_argument("--regions", default="alps,british-isles")
    p.add_argument("--members", type=int, default=4)
    p.add_argument("--steps", type=int, default=18)
    p.add_argument("--sampler", default="heun", help="the same sampler for both models (default heun)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pp-model", default="edm-pp-v2")
    p.add_argument("--tp-model", default="edm-tp-v2")
    p.add_argument("--threads", type=int, default=2, help="torch threads (1 on a CPU shared with other jobs)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results.md"))
    p.add_argument("--keep", default=None, help="directory for the downscale outputs (.nc)")
    args = p.parse_args(argv)

    import torch

    from ppviz.data.canonical import write_dataset
    from ppviz.data.source import load_dataset
    from ppviz.evaluation import gibbs_of_truth
    from ppviz.pipeline import downscale
    from ppviz.request import DownscaleRequest

    torch.set_num_threads(args.threads)
    ds = load_dataset(None)
    if ds.attrs.get("source") != "synthetic":
        print("warning: the default dataset is not the synthetic one ($PPVIZ_DATA?)", file=sys.stderr)
    times = heldout_times(ds, args.dates)
    t0 = time.perf_counter()
    all_rows, gibbs_by_region, diffs = [], {}, {}
    for region in [r.strip() for r in args.regions.split(",") if r.strip()]:
        runs = {}
        outputs = {}
        for key, model in (("pp", args.pp_model), ("tp", args.tp_model)):
            job = DownscaleRequest(data=None, region=region, checkpoint=model, members=args.members, steps=args.steps,
                      sampler=args.sampler,
                      seed=args.seed, device="cpu")
            ts = time.perf_counter()
            out = downscale(job, times, progress=False, command="benchmarks/results_table.py")
            print(f"{region} {model}: {len(times)} times x {args.members} members in {time.perf_counter() - ts:.0f} s",
                  file=sys.stderr)
            outputs[key] = out
            runs[key] = score(out, ("bicubic", "pp_bicubic") if key == "pp" else ())
            if args.keep:
                write_dataset(out, Path(args.keep) / f"{region}-{model}.nc")
        # the baselines come from the same coarse inputs in both runs
        np.testing.assert_allclose(outputs["pp"]["tp_bicubic"].values, outputs["tp"]["tp_bicubic"].values)
        rows, gb = rows_for_region(region, runs, gibbs_of_truth(outputs["pp"]), (args.pp_model, args.tp_model))
        all_rows += rows
        diffs[region] = paired_crps_difference(outputs["pp"], outputs["tp"])
        gibbs_by_region[region] = gb
    seconds = time.perf_counter() - t0
    held = f"{np.datetime_as_string(times[0], unit='h')} .. {np.datetime_as_string(times[-1], unit='h')}"
    command = "python benchmarks/results_table.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    meta = [f"Command: `{command}` ({seconds / 60:.1f} min on this machine's CPU).",
            f"{len(times)} held-out time steps per region ({held}, the days split_times(times, 0.2) holds out of "
            f"the {ds.sizes['time'] // 24}-day synthetic dataset), {args.members} members, {args.steps} {args.sampler} steps, "
            f"seed {args.seed}. CRPS: fair ensemble CRPS for the diffusion ensembles, MAE for the deterministic "
            "baselines. LSD: log-spectral distance of the mean tp power spectrum to the truth's over the band "
            "(on the 0.25 deg grid 25-100 km holds only the bins from the 55.6 km Nyquist to 100 km). "
            "p99/p99.9 ratio: pooled quantile / truth's. any rain / wet: fraction of cell-hours above 1e-6 mm/h / at or "
            "above the threshold. spread/skill: sqrt((M+1)/M mean ensemble variance) / RMSE of the ensemble mean.",
            ]
    text = markdown(all_rows, gibbs_by_region, meta) + markdown_diff(diffs)
    out = Path(args.out)  # atomic: temporary sibling, then rename
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text)
    tmp.replace(out)
    print(text)
    print(f"written: {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
