"""The ``ppviz`` command line: thin commands over the library.

Every failure a user can cause ends in one line ``ppviz: error: ...`` on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


class UserError(Exception):
    """A problem with the user's input, reported as one line."""


def _cmd_data_synth(args) -> int:
    from ppviz.data.canonical import write_dataset
    from ppviz.data.synthetic import default_dataset_path, synthesize

    if not 1 <= args.days <= 3660:
        raise UserError(f"--days {args.days} is out of range; allowed 1..3660")
    path = default_dataset_path(args.days, args.seed, data_dir=args.out)
    print(f"generating {args.days} days of synthetic Europe (seed {args.seed}) ...", file=sys.stderr)
    ds = synthesize(days=args.days, seed=args.seed, progress=True)
    write_dataset(ds, path)
    print(path)
    return 0


def _cmd_data_vimd(args) -> int:
    from ppviz.data.canonical import write_dataset
    from ppviz.data.prepare import compute_vimd_file

    ds = compute_vimd_file(args.q, args.u, args.v, args.sp, levels=args.levels)
    write_dataset(ds, args.out)
    _print_summary(ds, args.out)
    return 0


def _cmd_data_prepare(args) -> int:
    from ppviz.data.canonical import write_dataset
    from ppviz.data.prepare import prepare_dataset

    level_args = [args.q, args.u, args.v, args.sp]
    if args.vimd is None and not all(level_args):
        raise UserError("give either --vimd VIMD.nc or all of --q, --u, --v and --sp (with --levels for model levels)")
    if args.vimd is not None and any(level_args):
        raise UserError("give either --vimd or --q/--u/--v/--sp, not both")
    ds = prepare_dataset(args.tp, vimd_path=args.vimd, q=args.q, u=args.u, v=args.v, sp=args.sp, levels=args.levels)
    write_dataset(ds, args.out)
    _print_summary(ds, args.out)
    return 0


def _cmd_data_info(args) -> int:
    from ppviz.data.source import load_dataset

    ds = load_dataset(args.dataset)
    print(describe_dataset(ds, args.dataset or "embedded synthetic dataset"))
    return 0


def describe_dataset(ds, name) -> str:
    """A few lines on a canonical dataset: variables, units, grid and time range."""
    from ppviz.data.grid import Grid
    from ppviz.data.source import time_range_text

    g = Grid.from_coords(ds.lat.values, ds.lon.values)
    lines = [f"dataset: {name}", f"source: {ds.attrs.get('source', 'unknown')}"]
    for v, da in ds.data_vars.items():
        lines.append(f"  {v:6s} {da.attrs.get('units', '?'):8s} {da.attrs.get('long_name', '')} {tuple(da.shape)} {da.dtype}")
    lines.append(
        f"grid: {g.res:g} deg, {g.nlat} x {g.nlon} points, lat {g.lat[0]:g}..{g.lat[-1]:g}, lon {g.lon[0]:g}..{g.lon[-1]:g}"
    )
    lines.append(f"time: {time_range_text(ds)}")
    return "\n".join(lines)


def _print_summary(ds, out) -> None:
    print(describe_dataset(ds, out))


def _cmd_gibbs(args) -> int:
    from ppviz.gibbs import gibbs_report
    from ppviz.io import write_json_atomic

    report = gibbs_report(args.data, args.time, region=args.region, cutoff_km=args.cutoff_km, method=args.method)
    write_json_atomic(report, args.out)
    print(format_gibbs(report))
    print(f"written: {args.out}")
    return 0


def format_gibbs(report: dict) -> str:
    d = report["diagnostics"]
    rows = [
        f"Gibbs diagnostics of truncated TP at {report['time']} over {report['region']} "
        f"(cutoff {report['cutoff_km']:.0f} km, {report['method']}):",
        f"  negative cells        {100 * d['negative_fraction']:.2f} %",
        f"  most negative value   {d['min_value']:.3f} mm/h",
        f"  overshoot above max   {d['overshoot']:.3f} mm/h ({100 * d['overshoot_relative']:.1f} %)",
        f"  spurious drizzle      {100 * d['spurious_drizzle_fraction']:.2f} % of cells (dry before, > 0.1 mm/h after)",
    ]
    return "\n".join(rows)


def _cmd_regions(args) -> int:
    from ppviz.data.regions import list_regions

    for r in list_regions():
        lat0, lat1, lon0, lon1 = r.bounds
        print(f"{r.name:15s} {r.title:32s} lat {lat0:7.3f}..{lat1:7.3f}  lon {lon0:8.3f}..{lon1:8.3f}  {r.coarse_grid.nlat}x{r.coarse_grid.nlon} coarse cells")
    return 0


def _parse_shares(text, n):
    if text is None:
        return None
    try:
        shares = tuple(float(x) for x in text.split(","))
    except ValueError:
        shares = ()
    if len(shares) != n or any(x < 0 for x in shares) or sum(shares) <= 0:
        raise UserError(f"--shares {text!r} must be {n} non-negative numbers separated by commas, one per --data")
    return shares


def _cmd_train_pp(args) -> int:
    import shlex
    import time

    from ppviz.checkpoints import save_checkpoint
    from ppviz.data.source import load_dataset
    from ppviz.models.pp import PPConfig
    from ppviz.training.cards import pp_model_card
    from ppviz.training.pp import CellPool, PPTrainConfig, evaluate_pp, split_times, train_pp

    for name, value, lo, hi in (("--steps", args.steps, 1, 10**7), ("--batch", args.batch, 16, 10**7),
                                ("--hidden", args.hidden, 2, 4096), ("--depth", args.depth, 1, 16)):
        if not lo <= value <= hi:
            raise UserError(f"{name} {value} is out of range; allowed {lo}..{hi}")
    data = args.data or ["default"]
    shares = _parse_shares(args.shares, len(data))
    cfg = PPTrainConfig(steps=args.steps, batch=args.batch, lr=args.lr, seed=args.seed,
                        holdout_fraction=args.holdout, shares=shares,
                        model=PPConfig(hidden=args.hidden, depth=args.depth))
    train_pools, held = [], {}
    desc = []
    for d in data:
        ds = load_dataset(None if d in ("default", "synthetic") else d)
        label = "synthetic" if ds.attrs.get("source") == "synthetic" else Path(d).name
        tr, te = split_times(ds.time.values, args.holdout)
        # at most ~12M training cells per dataset keeps memory bounded (every k-th step)
        stride = max(1, int(np.ceil(tr.size * ds.sizes["lat"] * ds.sizes["lon"] / 12e6)))
        train_pools.append(CellPool.from_dataset(label, ds, tr[::stride]))
        held[label] = CellPool.from_dataset(label, ds, te[::stride])
        desc.append(f"{label} ({ds.attrs.get('source', '?')[:120]}; {tr.size} training and {te.size} held-out hours)")
    t0 = time.perf_counter()
    model, history = train_pp(train_pools, cfg, progress=True)
    seconds = time.perf_counter() - t0
    scores = {label: evaluate_pp(model, pool) for label, pool in held.items()}
    command = "ppviz " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if args.command_line is None else args.command_line
    name = Path(args.out).name
    card = pp_model_card(name, model.config.to_dict(), cfg.to_dict(), scores, command, seconds, desc)
    extra = {
        "summary": f"PP encoder-decoder, {args.hidden}x{args.depth} MLP, trained on {', '.join(held)}",
        "normalisation": {"tp_scale": model.config.tp_scale, "vimd_scale": model.config.vimd_scale},
        "training": {**cfg.to_dict(), "data": desc, "seconds": round(seconds, 1), "command": command},
        "heldout_scores": scores,
        "default": bool(args.default),
    }
    path = save_checkpoint(model, args.out, kind="pp", architecture="pp-mlp", config=model.config.to_dict(),
                           extra=extra, model_card=card)
    (Path(path) / "training_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in history))
    print(format_scores(scores))
    print(f"checkpoint: {path}")
    return 0


def format_scores(scores: dict[str, dict]) -> str:
    """Held-out scores as a small aligned table (one column per held-out set)."""
    sets = list(scores)
    keys = [k for k in next(iter(scores.values())) if k not in ("cells",)]
    lines = ["held-out " + " ".join(f"{s:>14s}" for s in sets)]
    for k in keys:
        vals = " ".join(f"{scores[s][k]:14.4f}" if isinstance(scores[s][k], float) else f"{scores[s][k]:14d}" for s in sets)
        lines.append(f"{k:28s}{vals}")
    return "\n".join(lines)


def _cmd_serve(args) -> int:
    from ppviz.serve import serve

    return serve(port=args.port, address=args.address, show=args.show)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ppviz", description="Pseudo-precipitation downscaling over Europe.")
    sub = p.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="prepare, synthesise and inspect datasets")
    dsub = data.add_subparsers(dest="data_command", required=True)

    s = dsub.add_parser("synth", help="write the synthetic Europe dataset")
    s.add_argument("--days", type=int, default=60, help="span in days (default 60)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", default=None, help="directory (default $PPVIZ_DATA_DIR or ~/.cache/ppviz)")
    s.set_defaults(func=_cmd_data_synth)

    v = dsub.add_parser("vimd", help="VIMD from q, u, v and surface pressure on pressure or model levels")
    for name in ("q", "u", "v", "sp"):
        v.add_argument(f"--{name}", required=True, help=f"netCDF file with {name}")
    v.add_argument("--levels", default=None, help="L137 table (CSV) for model levels")
    v.add_argument("--out", required=True, help="output netCDF (.nc) or zarr (.zarr)")
    v.set_defaults(func=_cmd_data_vimd)

    pr = dsub.add_parser("prepare", help="write the canonical (tp, vimd) dataset from ERA5 files")
    pr.add_argument("--tp", required=True, help="ERA5 tp (or mtpr) netCDF")
    pr.add_argument("--vimd", default=None, help="ERA5 vimd (or mvimd) netCDF")
    for name in ("q", "u", "v", "sp"):
        pr.add_argument(f"--{name}", default=None)
    pr.add_argument("--levels", default=None, help="L137 table (CSV) for model levels")
    pr.add_argument("--out", required=True, help="output .zarr or .nc")
    pr.set_defaults(func=_cmd_data_prepare)

    i = dsub.add_parser("info", help="variables, units, grid and time range of a dataset")
    i.add_argument("dataset", nargs="?", default=None, help="dataset path (default: embedded synthetic)")
    i.set_defaults(func=_cmd_data_info)

    g = sub.add_parser("gibbs", help="Gibbs diagnostics of spectrally truncated TP")
    g.add_argument("--data", default=None, help="dataset (default: embedded synthetic)")
    g.add_argument("--time", required=True, help="e.g. 2021-01-05T12:00")
    g.add_argument("--region", default="europe", help="region slug or lat0,lat1,lon0,lon1")
    g.add_argument("--cutoff-km", type=float, default=None, help="cutoff wavelength (default: the 1 deg scale)")
    g.add_argument("--method", default="dct", choices=["fft", "dct"])
    g.add_argument("--out", required=True, help="output JSON")
    g.set_defaults(func=_cmd_gibbs)

    tr = sub.add_parser("train", help="train the PP encoder-decoder or the diffusion downscaler")
    tsub = tr.add_subparsers(dest="train_command", required=True)
    tp = tsub.add_parser("pp", help="train the PP encoder-decoder and write a checkpoint")
    tp.add_argument("--data", action="append", default=None,
                    help="dataset (repeatable; 'default' = the embedded synthetic one)")
    tp.add_argument("--shares", default=None, help="share of each batch per --data, e.g. 0.9,0.05,0.05")
    tp.add_argument("--out", required=True, help="checkpoint directory to write")
    tp.add_argument("--steps", type=int, default=3000)
    tp.add_argument("--batch", type=int, default=16384)
    tp.add_argument("--lr", type=float, default=3e-3)
    tp.add_argument("--hidden", type=int, default=64)
    tp.add_argument("--depth", type=int, default=3)
    tp.add_argument("--seed", type=int, default=0)
    tp.add_argument("--holdout", type=float, default=0.2, help="held-out fraction of days (or hours per day)")
    tp.add_argument("--default", action="store_true", help="mark as the default PP checkpoint")
    tp.add_argument("--command-line", default=None, help=argparse.SUPPRESS)
    tp.set_defaults(func=_cmd_train_pp)

    r = sub.add_parser("regions", help="list the named regions")
    r.set_defaults(func=_cmd_regions)

    sv = sub.add_parser("serve", help="run the dashboard")
    sv.add_argument("--port", type=int, default=5006)
    sv.add_argument("--address", default="127.0.0.1")
    sv.add_argument("--show", action="store_true", help="open a browser")
    sv.set_defaults(func=_cmd_serve)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (UserError, ValueError, FileNotFoundError, KeyError) as exc:
        msg = str(exc).strip("'\"") or type(exc).__name__
        print(f"ppviz: error: {msg.splitlines()[0]}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ppviz: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
