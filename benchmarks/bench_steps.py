"""Benchmark: quality against denoiser evaluations for every sampler, one run (issue 11).

Held-out hours (``ppviz.training.pp.split_times``, never seen in training) in two regions; every
sampler of :data:`ppviz.diffusion.samplers.SAMPLERS` at 2, 3, 4, 6, 8, 12, 18 and 35 denoiser
evaluations (Heun: the most steps within that budget, ``2 steps - 1`` evaluations; a budget
below 3 has no Heun row), and Euler-Maruyama with 1000 steps as the slow reference; the noise
levels are the checkpoint's schedule (``config.schedule``). Per row:

- fair CRPS of the tp members (mm/h), mean over hours, regions and cells;
- LSD 50-200 km: log-spectral distance (dB) between the members' mean tp spectrum and the
  truth's, per region (spectra averaged over the hours), then averaged over the regions;
- p99 and p99.9 ratios: pooled member quantile / pooled truth quantile;
- max |PP| of the members (the generated field; transformed tp for a tp-target checkpoint);
- false drizzle: fraction of member cells >= 0.1 mm/h where the truth is 0 (dry cells), and
  wet hits: fraction of member cells >= 0.1 mm/h where the truth is >= 0.1 (wet area kept);
- seconds per member (wall time of the sampler over hours x members).

With ``--student CKPT`` a few-step student of the checkpoint (``ppviz train distill``, e.g.
``pretrained/edm-pp-v1-student``) is run on the same hours, regions and member seeds at each step
count its schedule stores (1, 2, 4 evaluations, Euler on its stored levels); its rows are labelled
with its name, drawn in the PNG, and count for the last line. ``--card`` then writes the student's
rows next to the teacher's (Heun-35, Euler and DPM-Solver++(2M) at the same evaluations) into the
student's MODEL_CARD.md, with the PNG ``student_curve.png`` beside it.

With ``--drizzle-threshold`` (mm/h, or ``auto`` for the value calibrated on training hours by
:func:`ppviz.training.drizzle.calibrate_threshold`) false drizzle and wet hits are also reported after
setting member tp below the threshold to 0 (columns ``drizzle_thr``, ``wet_thr``).

The table goes to stdout and, with ``--readme``, into ``benchmarks/README.md`` (between markers,
with the command); the PNG of quality against evaluations to ``--png``. The last line is::

    fewest evaluations within 5% CRPS and 0.5 dB LSD of Heun-35: N (time vs Euler-Maruyama-1000: Rx)

Run from the repository root (small settings finish in a few minutes on 2 CPU cores)::

    .venv/bin/python benchmarks/bench_steps.py --hours 2 --members 4 --regions alps,iberia \\
        --readme --png benchmarks/bench_steps.png
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ppviz.data.regions import Region  # noqa: E402
from ppviz.data.source import load_dataset  # noqa: E402
from ppviz.diffusion.samplers import SAMPLERS, evaluations, schedule_sigmas, steps_for  # noqa: E402
from ppviz.metrics.ensemble import crps_ensemble  # noqa: E402
from ppviz.pipeline import Models, _static, coarse_input, member_seed  # noqa: E402
from ppviz.spectral import rapsd  # noqa: E402
from ppviz.training.pp import split_times  # noqa: E402

EVALS = (2, 3, 4, 6, 8, 12, 18, 35)
WET = 0.1  # mm/h
BEGIN, END = "<!-- bench_steps:begin -->", "<!-- bench_steps:end -->"


def lsd_db(p_model: np.ndarray, p_truth: np.ndarray, wavelength: np.ndarray, band=(50.0, 200.0)) -> float:
    """Log-spectral distance (dB) over the wavelength band (as ppviz.metrics.spectra.log_spectral_distance)."""
    sel = (wavelength >= band[0]) & (wavelength <= band[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        db = 10 * np.log10(p_model[sel] / p_truth[sel])
    return float(np.sqrt(np.mean(db**2))) if np.isfinite(db).all() else float("inf")


def run_config(models, inputs, sampler: str, steps: int, members: int, seed: int, schedule) -> dict:
    """Members of every (region, hour) input with one sampler setting; the raw arrays and the time."""
    fn_sigmas = schedule_sigmas(schedule, steps)  # Karras levels, or a student's stored grid
    out, seconds = [], 0.0
    for region, inp, static in inputs:
        seeds = [member_seed(seed, inp.time, k) for k in range(members)]
        t0 = time.perf_counter()
        pp = models.diffusion.sample(inp.conditioning, static, seeds, sampler=sampler, sigmas=fn_sigmas).numpy()
        seconds += time.perf_counter() - t0
        with np.errstate(all="ignore"):
            tp = models.decode(pp) if models.transform is None else models.transform.inverse(pp)
        out.append((region, inp, pp, np.asarray(tp, dtype=np.float64)))
    return {"fields": out, "sec_per_member": seconds / (len(inputs) * members)}


def score(fields, threshold: float | None) -> dict:
    """The row's metrics from the fields of :func:`run_config`."""
    crps, pp_max, drizzle, hits, mem_all, tru_all = [], 0.0, [0, 0], [0, 0], [], []
    thr_drizzle, thr_hits = [0, 0], [0, 0]
    spectra: dict[str, list] = {}
    for region, inp, pp, tp in fields:
        truth = np.asarray(inp.truth_tp, dtype=np.float64)
        finite = bool(np.isfinite(tp).all())
        crps.append(float(np.nanmean(crps_ensemble(tp, truth))) if finite else float("inf"))
        pp_max = max(pp_max, float(np.nanmax(np.abs(pp))) if np.isfinite(pp).all() else float("inf"))
        dry, wet = truth <= 0, truth >= WET
        drizzle[0] += int((tp[:, dry] >= WET).sum()); drizzle[1] += int(dry.sum()) * tp.shape[0]
        hits[0] += int((tp[:, wet] >= WET).sum()); hits[1] += int(wet.sum()) * tp.shape[0]
        if threshold is not None:
            tpt = np.where(tp < threshold, 0.0, tp)
            thr_drizzle[0] += int((tpt[:, dry] >= WET).sum()); thr_drizzle[1] += int(dry.sum()) * tp.shape[0]
            thr_hits[0] += int((tpt[:, wet] >= WET).sum()); thr_hits[1] += int(wet.sum()) * tp.shape[0]
        mem_all.append(tp.ravel()); tru_all.append(truth.ravel())
        if finite:
            k, p_m = rapsd(tp, region.fine_grid.dx_km)
            _, p_t = rapsd(truth, region.fine_grid.dx_km)
            spectra.setdefault(region.slug_or_box, []).append((1 / k, p_m.mean(0), p_t))
        else:
            spectra.setdefault(region.slug_or_box, []).append(None)
    lsds = []
    for parts in spectra.values():
        if any(p is None for p in parts):
            lsds.append(float("inf"))
            continue
        wl = parts[0][0]
        lsds.append(lsd_db(np.mean([p[1] for p in parts], 0), np.mean([p[2] for p in parts], 0), wl))
    m, t = np.concatenate(mem_all), np.concatenate(tru_all)
    with np.errstate(all="ignore"):
        q = {lv: (float(np.quantile(m, lv) / np.quantile(t, lv)) if np.isfinite(m).all() else float("inf"))
             for lv in (0.99, 0.999)}
    frac = lambda a: a[0] / a[1] if a[1] else float("nan")  # noqa: E731
    row = {"crps": float(np.mean(crps)), "lsd_db": float(np.mean(lsds)), "p99": q[0.99], "p999": q[0.999],
           "max_abs_pp": pp_max, "false_drizzle": frac(drizzle), "wet_hits": frac(hits),
           "max_tp": float(np.nanmax(m)) if m.size else float("nan"), "truth_max": float(t.max())}
    if threshold is not None:
        row.update(drizzle_thr=frac(thr_drizzle), wet_thr=frac(thr_hits))
    return row


def fmt(v: float, spec: str) -> str:
    return "inf" if not np.isfinite(v) else format(v, spec)


def table(rows: list[dict], threshold: float | None) -> str:
    head = ["sampler", "steps", "evals", "fair CRPS (mm/h)", "LSD 50-200 km (dB)", "p99 / truth", "p99.9 / truth",
            "max abs PP", "false drizzle", "wet hits", "s / member"]
    if threshold is not None:
        head += [f"false drizzle, thr {threshold:.3g}", f"wet hits, thr {threshold:.3g}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [_label(r), str(r["steps"]), str(r["evals"]), fmt(r["crps"], ".4f"), fmt(r["lsd_db"], ".2f"),
                 fmt(r["p99"], ".2f"), fmt(r["p999"], ".2f"), fmt(r["max_abs_pp"], ".2f"),
                 fmt(r["false_drizzle"], ".4f"), fmt(r["wet_hits"], ".3f"), fmt(r["sec_per_member"], ".3f")]
        if threshold is not None:
            cells += [fmt(r["drizzle_thr"], ".4f"), fmt(r["wet_thr"], ".3f")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _label(r: dict) -> str:
    # a teacher row's sampler, or "<student checkpoint> (euler)"
    return f"{r['checkpoint']} ({r['sampler']})" if r.get("model") == "student" else r["sampler"]


def answer(rows: list[dict]) -> tuple[dict, dict, dict | None]:
    """Heun-35, EM-1000 and the fewest-evaluations row (student rows included) within 5% CRPS and
    0.5 dB LSD of Heun-35."""
    teacher = [r for r in rows if r.get("model") != "student"]
    ref = next(r for r in teacher if r["sampler"] == "heun" and r["evals"] == 35)
    em = next(r for r in teacher if r["sampler"] == "euler_maruyama" and r["steps"] == max(
        x["steps"] for x in teacher if x["sampler"] == "euler_maruyama"))
    ok = [r for r in rows if r is not em and r["crps"] <= 1.05 * ref["crps"] and r["lsd_db"] <= ref["lsd_db"] + 0.5]
    best = min(ok, key=lambda r: (r["evals"], r["crps"])) if ok else None
    return ref, em, best


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    ref, em, _ = answer(rows)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    cap = {"crps": 10 * ref["crps"], "lsd_db": 30.0, "p999": 10.0}
    for ax, key, label in zip(axes, ("crps", "lsd_db", "p999"),
                              ("fair CRPS (mm/h)", "LSD 50-200 km (dB)", "p99.9 member / truth")):
        for name in sorted({_label(r) for r in rows}):
            pts = [(r["evals"], r[key]) for r in rows if _label(r) == name and r is not em]
            x = [p[0] for p in pts]
            y = [min(p[1], cap[key]) if np.isfinite(p[1]) else cap[key] for p in pts]
            student = any(r.get("model") == "student" and _label(r) == name for r in rows)
            ax.plot(x, y, "s-" if student else "o-", label=name, alpha=0.85, lw=2.2 if student else 1.5,
                    color="k" if student else None)
        ax.axhline(min(em[key], cap[key]), color="k", ls=":", label=f"Euler-Maruyama {em['steps']}")
        if key == "crps":
            ax.axhline(1.05 * ref["crps"], color="grey", ls="--", label="Heun-35 + 5%")
            ax.set_yscale("log")
            ax.set_ylim(0.5 * min(r["crps"] for r in rows), cap[key] * 1.1)
        if key == "lsd_db":
            ax.axhline(ref["lsd_db"] + 0.5, color="grey", ls="--", label="Heun-35 + 0.5 dB")
            ax.set_ylim(0, cap[key] * 1.05)
        if key == "p999":
            ax.axhline(1.0, color="grey", ls="--", label="truth")
            ax.set_yscale("log")
            ax.set_ylim(0.5, cap[key] * 1.1)
        ax.set_xscale("log")
        ticks = sorted(set(EVALS) | {r["evals"] for r in rows if r.get("model") == "student"})
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xticklabels([str(e) for e in ticks])
        ax.set_xlabel("denoiser evaluations (Heun: 2 steps - 1)")
        ax.set_ylabel(label + "\n(values above the top drawn at the top)", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def write_readme(path: Path, text: str) -> None:
    old = path.read_text() if path.exists() else ""
    block = f"{BEGIN}\n{text}\n{END}"
    if BEGIN in old and END in old:
        new = old[: old.index(BEGIN)] + block + old[old.index(END) + len(END):]
    else:
        new = old.rstrip() + "\n\n## `bench_steps.py`: quality against denoiser evaluations, every sampler\n\n" + block + "\n"
    path.write_text(new)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=None, help="diffusion checkpoint (default: the default one)")
    p.add_argument("--regions", default="alps,iberia")
    p.add_argument("--hours", type=int, default=2, help="held-out hours per region")
    p.add_argument("--members", type=int, default=4)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--evals", default=",".join(map(str, EVALS)))
    p.add_argument("--em-steps", type=int, default=1000)
    p.add_argument("--sigma-max", type=float, default=None, help="override the checkpoint's schedule.sigma_max")
    p.add_argument("--dry", action="store_true", help="dry held-out hours (regional mean tp at most its median)")
    p.add_argument("--drizzle-threshold", default=None, help="mm/h, or 'auto' (calibrated on training hours)")
    p.add_argument("--json", default=None, help="write the rows as JSON here")
    p.add_argument("--png", default=None)
    p.add_argument("--readme", action="store_true", help="write the table into benchmarks/README.md")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--student", default=None, help="a few-step student of the checkpoint (ppviz train distill), run "
                                                   "at each of its stored step counts")
    p.add_argument("--card", action="store_true", help="write the student's curve into its MODEL_CARD.md and "
                                                       "student_curve.png beside it")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    ds = load_dataset(None)
    models = Models.load(args.checkpoint, device="cpu")
    schedule = models.schedule
    if args.sigma_max is not None:
        from dataclasses import replace

        schedule = replace(schedule, sigma_max=args.sigma_max)
    train, held = split_times(ds.time.values, 0.2)
    threshold = None
    if args.drizzle_threshold == "auto":
        from ppviz.training.drizzle import calibrate_threshold

        threshold = calibrate_threshold(models, ds, ds.time.values[train], seed=args.seed)
    elif args.drizzle_threshold is not None:
        threshold = float(args.drizzle_threshold)
    inputs = []
    for r, name in enumerate(args.regions.split(",")):
        region = Region.parse(name)
        # held-out hours with rain in the region (regional mean tp above its held-out median; with
        # --dry at most the median), evenly spread over the held-out days
        tp = region.subset(ds["tp"].isel(time=held))
        wet_mean = tp.mean(("lat", "lon")).values
        cand = held[(wet_mean <= np.median(wet_mean)) if args.dry else (wet_mean > np.median(wet_mean))]
        pick = cand[np.linspace(0, cand.size - 1, args.hours + 2)[1:-1].round().astype(int)]
        static = _static(region.fine_grid)
        inputs += [(region, coarse_input(models, ds, t, region, "fine"), static) for t in ds.time.values[pick]]
    configs = []
    for sampler in sorted(SAMPLERS):
        for e in (int(v) for v in args.evals.split(",")):
            n = steps_for(sampler, e)  # Heun: the most steps within the budget (odd evaluations)
            if n is not None and (sampler, n) not in configs:
                configs.append((sampler, n))
    if ("euler_maruyama", args.em_steps) not in configs:
        configs.append(("euler_maruyama", args.em_steps))
    rows = []
    for sampler, n in configs:
        res = run_config(models, inputs, sampler, n, args.members, args.seed, schedule)
        row = {"sampler": sampler, "steps": n, "evals": evaluations(sampler, n),
               "sec_per_member": res["sec_per_member"], **score(res["fields"], threshold)}
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    if args.student:
        rows += student_rows(args.student, models, inputs, args.members, args.seed, threshold)
    rows.sort(key=lambda r: (r.get("model") == "student", r["sampler"], r["evals"]))
    ref, em, best = answer(rows)
    cmd = "python benchmarks/bench_steps.py " + " ".join(argv if argv is not None else sys.argv[1:])
    meta = (f"checkpoint `{models.diffusion_name}`, schedule sigma_min={schedule.sigma_min:g} "
            f"sigma_max={schedule.sigma_max:g} rho={schedule.rho:g}; regions {args.regions}, {args.hours} "
            f"{'dry' if args.dry else 'wet'} held-out hours each, {args.members} members, seed {args.seed}; {torch.get_num_threads()} torch threads")
    tab = table(rows, threshold)
    if best is None:
        last = "fewest evaluations within 5% CRPS and 0.5 dB LSD of Heun-35: none"
    else:
        last = (f"fewest evaluations within 5% CRPS and 0.5 dB LSD of Heun-35: {best['evals']} "
                f"(time vs Euler-Maruyama-{em['steps']}: {em['sec_per_member'] / best['sec_per_member']:.0f}x)")
    detail = (f"answer: {best['sampler']} with {best['steps']} steps" if best else "answer: none")
    if best is not None and best.get("model") == "student":
        detail = f"answer: the student {best['checkpoint']} with {best['steps']} euler steps"
    print(meta)
    print(tab)
    print(detail)
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows, "threshold": threshold}, indent=1))
    if args.png:
        plot(rows, Path(args.png), meta)
    if args.student and args.card:
        write_card(args.student, models.diffusion_name, rows, cmd, meta)
    if args.readme:
        text = (f"Command: `{cmd}`\n\n{meta}.\n\n{tab}\n\n{detail}\n\n```\n{last}\n```")
        write_readme(Path(__file__).with_name("README.md"), text)
    print(last)
    return 0


def student_rows(name: str, models, inputs, members: int, seed: int, threshold) -> list[dict]:
    """Rows of the student ``name`` at each step count its schedule stores (same inputs and seeds)."""
    student = Models.load(name, device="cpu")
    if student.pp_sha256 != models.pp_sha256:
        raise ValueError(f"student {student.diffusion_name} decodes with {student.pp_name}, the checkpoint with "
                         f"{models.pp_name}: not comparable on the same inputs")
    sched = student.schedule
    if sched.allowed_steps is None:
        raise ValueError(f"{student.diffusion_name} stores no grids: not a few-step student (ppviz train distill)")
    rows = []
    for n in sched.allowed_steps:
        res = run_config(student, inputs, sched.sampler, n, members, seed, sched)
        row = {"model": "student", "checkpoint": student.diffusion_name, "sampler": sched.sampler, "steps": n,
               "evals": evaluations(sched.sampler, n), "sec_per_member": res["sec_per_member"],
               **score(res["fields"], threshold)}
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def write_card(name: str, teacher: str, rows: list[dict], cmd: str, meta: str) -> None:
    """The student's curve (table + student_curve.png) into its MODEL_CARD.md."""
    from ppviz.checkpoints import resolve_checkpoint
    from ppviz.training.cards import student_curve_text, write_curve

    path = resolve_checkpoint(name, "diffusion")
    keep = [r for r in rows if r.get("model") == "student" or r["sampler"] in ("heun", "euler", "dpmpp_2m",
                                                                                 "euler_maruyama")]
    plot(keep, path / "student_curve.png", f"{path.name} (black) and its teacher {teacher}\n{meta}")
    student = next(r["checkpoint"] for r in rows if r.get("model") == "student")
    distilled_from = json.loads((path / "config.json").read_text()).get("extra", {}).get("teacher", {}).get("steps")
    write_curve(path / "MODEL_CARD.md", student_curve_text(rows, teacher, student, cmd, meta, "student_curve.png",
                                                           teacher_steps=distilled_from))


if __name__ == "__main__":
    raise SystemExit(main())
