"""``ppviz data``, ``ppviz gibbs``, ``ppviz encode``, ``ppviz regions``: datasets in and out."""

from __future__ import annotations

import sys

import numpy as np

from ppviz.cli.common import UserError, command_group, command_line, output_path

def _cmd_data_synth(args) -> int:
    from ppviz.data.canonical import write_dataset
    from ppviz.data.source import default_dataset_path
    from ppviz.data.synthetic import synthesize

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


def _cmd_encode(args) -> int:
    import xarray as xr

    from ppviz.checkpoints import default_checkpoint, load_checkpoint
    from ppviz.data.canonical import write_dataset
    from ppviz.data.source import load_dataset
    from ppviz.models.pp import decode_numpy, encode_numpy
    from ppviz.data.source import select_times
    from ppviz.pipeline import PP_ATTRS, TP_ATTRS

    out = output_path(args.out)
    pp = load_checkpoint(args.pp_checkpoint or default_checkpoint("pp"), kind="pp")
    ds = load_dataset(args.data)
    if args.start is not None:
        times = select_times(ds, args.start, args.end or args.start)
        ds = ds.sel(time=times)
    elif args.end is not None:
        raise UserError("--end needs --start")
    tp = np.asarray(ds["tp"].values, dtype=np.float32)
    vimd = np.asarray(ds["vimd"].values, dtype=np.float32)
    code = encode_numpy(pp.model, tp, vimd)
    dec = decode_numpy(pp.model, code)
    res = ds[["tp", "vimd"]].load().copy()
    dims = ("time", "lat", "lon")
    res["pp"] = xr.Variable(dims, code, PP_ATTRS)
    res["tp_decoded"] = xr.Variable(dims, dec, {**TP_ATTRS, "long_name": "tp decoded from PP (encode-decode round trip)"})
    res.attrs = {**ds.attrs, "pp_checkpoint": pp.name, "pp_checkpoint_sha256": pp.sha256,
                 "history": command_line(args), "Conventions": "CF-1.8"}
    write_dataset(res, out)
    err = np.abs(dec - tp)
    print(f"wrote {out}: {tp.shape[0]} times; PP mean {np.nanmean(code):.3f} std {np.nanstd(code):.3f}; "
          f"|decoded - tp| mean {np.nanmean(err):.4f} mm/h, max {np.nanmax(err):.3f} mm/h")
    return 0


def _cmd_regions(args) -> int:
    from ppviz.data.regions import list_regions

    for r in list_regions():
        lat0, lat1, lon0, lon1 = r.bounds
        print(f"{r.name:15s} {r.title:32s} lat {lat0:7.3f}..{lat1:7.3f}  lon {lon0:8.3f}..{lon1:8.3f}  {r.coarse_grid.nlat}x{r.coarse_grid.nlon} coarse cells")
    return 0


def add_parsers(sub) -> None:
    """Add this module's subcommands to ``sub`` (the ``ppviz`` subparsers)."""
    dsub = command_group(sub, "data", "prepare, synthesise and inspect datasets")

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
    g.add_argument("--data", default=None, help="dataset path or name: synthetic, era5-sample (default: $PPVIZ_DATA, else synthetic)")
    g.add_argument("--time", required=True, help="e.g. 2021-01-05T12:00")
    g.add_argument("--region", default=None, help="region slug or lat0,lat1,lon0,lon1 (default: the extent of the data)")
    g.add_argument("--cutoff-km", type=float, default=None, help="cutoff wavelength (default: the 1 deg scale)")
    g.add_argument("--method", default="dct", choices=["fft", "dct"])
    g.add_argument("--out", required=True, help="output JSON")
    g.set_defaults(func=_cmd_gibbs)

    en = sub.add_parser("encode", help="write PP and the decoded tp beside the input")
    en.add_argument("--data", default=None, help="dataset path or name: synthetic, era5-sample (default: $PPVIZ_DATA, else synthetic)")
    en.add_argument("--start", default=None)
    en.add_argument("--end", default=None)
    en.add_argument("--pp-checkpoint", default=None)
    en.add_argument("--out", required=True, help="output .nc or .zarr")
    en.set_defaults(func=_cmd_encode)

    r = sub.add_parser("regions", help="list the named regions")
    r.set_defaults(func=_cmd_regions)
