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
    dist_w = _parse_shares(args.distribution_weights, len(data)) if args.distribution_weights else None
    cfg = PPTrainConfig(steps=args.steps, batch=args.batch, lr=args.lr, seed=args.seed,
                        holdout_fraction=args.holdout, shares=shares, distribution_weights=dist_w,
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


def _command_line(args) -> str:
    import shlex

    if getattr(args, "command_line", None):
        return args.command_line
    return "ppviz " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def _check_range(name: str, value, lo, hi) -> None:
    if not lo <= value <= hi:
        raise UserError(f"{name} {value} is out of range; allowed {lo}..{hi}")


def _cmd_train_diffusion(args) -> int:
    import time

    import torch

    from ppviz.checkpoints import default_checkpoint, load_checkpoint, save_checkpoint
    from ppviz.data.grid import Grid
    from ppviz.data.regions import Region
    from ppviz.data.source import load_dataset
    from ppviz.diffusion.downscaler import DownscalerConfig, residual_std, static_channels
    from ppviz.training.diffusion_loop import DiffusionTrainConfig, train_diffusion
    from ppviz.models.unet import UNetConfig
    from ppviz.pipeline import Models
    from ppviz.training.diffusion import diffusion_model_card, encode_fine_pp, format_heldout, heldout_scores
    from ppviz.training.pp import split_times

    for name, value, lo, hi in (("--steps", args.steps, 0, 10**7), ("--batch", args.batch, 1, 4096),
                                ("--crop", args.crop, 16, 1024), ("--base-channels", args.base_channels, 4, 512),
                                ("--eval-dates", args.eval_dates, 0, 1000), ("--eval-members", args.eval_members, 2, 64)):
        _check_range(name, value, lo, hi)
    try:
        mult = tuple(int(x) for x in args.channel_mult.split(","))
    except ValueError:
        raise UserError(f"--channel-mult {args.channel_mult!r} must be integers separated by commas, e.g. 1,2,2") from None
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise UserError(f"{out} exists; choose another --out or pass --overwrite")
    state_dir = Path(args.state_dir) if args.state_dir else out.parent / f".{out.name}.train"
    pp_name = args.pp_checkpoint or default_checkpoint("pp")
    pp = load_checkpoint(pp_name, kind="pp")
    ds = load_dataset(None if args.data in (None, "default", "synthetic") else args.data)
    grid = Grid.from_coords(ds.lat.values, ds.lon.values)
    train_idx, held_idx = split_times(ds.time.values, args.holdout)
    print(f"data: {ds.attrs.get('source', args.data or 'default')[:100]}; {train_idx.size} training and "
          f"{held_idx.size} held-out hours; PP checkpoint {pp.name}")
    transform = None
    if args.target == "tp":  # the no-PP control (ppviz.tp_target): same model on a transform of tp
        from ppviz.tp_target import encode_fine_z, fit_transform

        transform = fit_transform(ds, train_idx)
        print(f"target: transformed tp, z = (log1p(tp / {transform.offset:g}) - {transform.mu:.4f}) / "
              f"{transform.sd:.4f} (no PP; the PP checkpoint serves only the references)")
        pp_fine = encode_fine_z(transform, ds, train_idx)
    else:
        pp_fine = encode_fine_pp(pp.model, ds, train_idx)
    static = static_channels(grid)
    sigma_data = args.sigma_data or round(residual_std(pp_fine[:: max(1, pp_fine.shape[0] // 64)], grid.lat), 4)
    unet = UNetConfig(base_channels=args.base_channels, channel_mult=mult, blocks_per_level=args.blocks)
    model_cfg = DownscalerConfig(unet=unet, sigma_data=sigma_data)
    train_cfg = DiffusionTrainConfig(crop=args.crop, batch_size=args.batch, steps=args.steps, lr=args.lr,
                                     lr_warmup_steps=min(500, max(1, args.steps // 10)),
                                     ema_halflife_steps=max(10.0, args.steps / 10), seed=args.seed,
                                     ckpt_every=max(1, min(500, args.steps)))
    t0 = time.perf_counter()
    ema = train_diffusion(pp_fine, static, grid, train_cfg, state_dir, model_config=model_cfg, resume=args.resume)
    seconds = time.perf_counter() - t0
    from ppviz.training.diffusion_loop import read_log

    log = read_log(state_dir / "train_log.jsonl")
    if log:
        seconds = max(seconds, float(log[-1]["seconds"]))
    del pp_fine
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    models = Models(pp=pp.model, diffusion=ema.to(device).eval(), pp_name=pp.name, pp_sha256=pp.sha256,
                    diffusion_name=out.name, diffusion_sha256="(being written)", device=device,
                    transform=transform)
    held_days = np.asarray(ds.time.values[held_idx])
    n = min(args.eval_dates, held_days.size)
    scores = None
    if n:
        # spread the held-out dates evenly over the held-out period, at varying hours
        pick = held_days[np.linspace(0, held_days.size - 1, n).round().astype(int)]
        scores = heldout_scores(models, ds, pick, Region.parse(args.eval_region), members=args.eval_members,
                                steps=18, seed=args.seed)
        print(format_heldout(scores))
    command = _command_line(args)
    desc = (f"{ds.attrs.get('source', 'dataset')[:160]} ({args.data or 'default'}), "
            f"{train_idx.size} training hours; held out: {held_idx.size} hours, every "
            f"{round(1 / args.holdout)}th day (ppviz.training.pp.split_times)")
    card = diffusion_model_card(out.name, model_cfg.to_dict(), train_cfg.to_dict(),
                                scores or {}, command=command, seconds=seconds, data_desc=desc,
                                pp_checkpoint=pp.name, pp_sha256=pp.sha256,
                                n_params=sum(p.numel() for p in ema.parameters())) if scores else None
    if card is not None and transform is not None:
        from ppviz.tp_target import tp_target_model_card

        card = tp_target_model_card(card, out.name, transform)
    extra = {
        "summary": f"EDM PP downscaler, U-Net {args.base_channels}x{list(mult)}, {sum(p.numel() for p in ema.parameters()) / 1e6:.2f} M params",
        "pp_checkpoint": pp.name,
        "pp_checkpoint_sha256": pp.sha256,
        "coarse_from": "fine",
        "coarse_pp": "area-weighted 4x4 block mean of the fine PP (encode at 0.25 deg, then coarsen)",
        "grid": {"res": grid.res, "factor": model_cfg.factor},
        "normalisation": {"sigma_data": sigma_data, "target": "fine PP - bilinear(coarse PP)"},
        "training": {**train_cfg.to_dict(), "seconds": round(seconds, 1), "command": command, "data": desc},
        "heldout_scores": {k: v for k, v in (scores or {}).items() if k != "spectra"},
        "heldout_spectra": (scores or {}).get("spectra"),
        "default": bool(args.default),
        "target": args.target,
    }
    if transform is not None:
        extra.update({
            "summary": f"EDM tp-target downscaler (no PP; control experiment), U-Net {args.base_channels}x"
                       f"{list(mult)}, {sum(p.numel() for p in ema.parameters()) / 1e6:.2f} M params",
            "tp_transform": transform.to_dict(),
            "coarse_tp_z": "area-weighted 4x4 block mean of the transformed fine tp",
            "normalisation": {"sigma_data": sigma_data, "target": "fine z - bilinear(coarse z)"},
        })
        extra.pop("coarse_pp", None)
    path = save_checkpoint(ema.cpu(), out, kind="diffusion", architecture="edm-unet", config=model_cfg.to_dict(),
                           extra=extra, model_card=card, overwrite=args.overwrite)
    import shutil

    shutil.copy(state_dir / "train_log.jsonl", Path(path) / "training_log.jsonl")
    print(f"checkpoint: {path} (training state kept in {state_dir} for --resume)")
    return 0


def _request_from_args(args):
    from ppviz.request import DownscaleRequest

    request = DownscaleRequest(data=args.data, region=args.region, checkpoint=args.checkpoint,
                               pp_checkpoint=args.pp_checkpoint, time=args.start, end=args.end,
                               members=args.members, steps=args.steps, seed=args.seed, churn=args.churn,
                               coarse_from=args.coarse_from, device=args.device)
    request.check()
    return request


def _output_path(text: str) -> Path:
    out = Path(text)
    if out.suffix not in (".nc", ".zarr"):
        raise UserError(f"--out {text!r} must end in .nc (netCDF) or .zarr")
    return out


def _cmd_downscale(args) -> int:
    from ppviz.data.canonical import write_dataset
    from ppviz.data.source import load_dataset
    from ppviz.pipeline import Models, downscale, local_client

    out = _output_path(args.out)
    job = _request_from_args(args)
    ds = load_dataset(job.data)
    times = job.times(ds)
    # fail on bad checkpoints here, with one message, before any worker starts
    Models.load(job.checkpoint, job.pp_checkpoint, "cpu")
    client = None
    use_cluster = args.scheduler is not None or (len(times) > 1 and args.workers != 0)
    if use_cluster:
        from distributed import Client

        client = Client(args.scheduler) if args.scheduler else local_client(args.workers or None)
        print(f"dask: {client.dashboard_link if args.scheduler else 'LocalCluster'} with "
              f"{len(client.scheduler_info()['workers'])} workers")
    try:
        result = downscale(job, times, client=client, command=_command_line(args))
    finally:
        if client is not None:
            cluster = getattr(client, "cluster", None)
            client.close()
            if cluster is not None:
                cluster.close()
    write_dataset(result, out)
    print(f"wrote {out}: {result.sizes['member']} members x {result.sizes['time']} times x "
          f"{result.sizes['lat']} x {result.sizes['lon']} ({result.attrs['region']}, "
          f"{result.attrs['steps']} Heun steps, seed {result.attrs['seed']})")
    return 0


def _cmd_evaluate(args) -> int:
    from ppviz.evaluation import evaluate_ensemble, open_ensemble, parse_baselines, write_outputs
    from ppviz.evaluation.report import format_table

    _check_range("--max-map-dates", args.max_map_dates, 0, 24)
    _check_range("--time-chunk", args.time_chunk, 1, 10**6)
    if args.workers is not None and args.scheduler is not None:
        raise UserError("give --workers or --scheduler, not both")
    if args.workers is not None:
        _check_range("--workers", args.workers, 0, 256)
    ds = open_ensemble(args.ensemble, time_chunk=args.time_chunk)
    names = parse_baselines(args.baselines, ds)
    client = None
    if args.scheduler or args.workers:
        from distributed import Client

        from ppviz.evaluation import local_cluster_client

        client = Client(args.scheduler) if args.scheduler else local_cluster_client(args.workers)
        print(f"dask: {args.scheduler or 'LocalCluster'} with {len(client.scheduler_info()['workers'])} workers")
    try:
        ev = evaluate_ensemble(ds, baselines=names, client=client, time_chunk=args.time_chunk)
    finally:
        if client is not None:
            cluster = getattr(client, "cluster", None)
            client.close()
            if cluster is not None and not args.scheduler:
                cluster.close()
    paths = write_outputs(ev, ds, args.out, max_map_dates=args.max_map_dates)
    print(f"{args.ensemble}: {ev.settings['n_times']} times x {ev.settings['n_members']} members, "
          f"region {ev.settings.get('region', '?')}, model {ev.settings.get('diffusion_checkpoint', '?')}")
    print(format_table(ev.scalars, ev.gibbs))
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def _cmd_encode(args) -> int:
    import xarray as xr

    from ppviz.checkpoints import default_checkpoint, load_checkpoint
    from ppviz.data.canonical import write_dataset
    from ppviz.data.source import load_dataset
    from ppviz.models.pp import decode_numpy, encode_numpy
    from ppviz.data.source import select_times
    from ppviz.pipeline import PP_ATTRS, TP_ATTRS

    out = _output_path(args.out)
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
                 "history": _command_line(args), "Conventions": "CF-1.8"}
    write_dataset(res, out)
    err = np.abs(dec - tp)
    print(f"wrote {out}: {tp.shape[0]} times; PP mean {np.nanmean(code):.3f} std {np.nanstd(code):.3f}; "
          f"|decoded - tp| mean {np.nanmean(err):.4f} mm/h, max {np.nanmax(err):.3f} mm/h")
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
    from ppviz.serve import ServeSettings, serve

    settings = ServeSettings.from_env(
        port=args.port, address=args.address, allowed_origins=args.allow_websocket_origin,
        num_procs=args.num_procs, prefix=args.prefix, use_xheaders=args.use_xheaders or None,
        show=args.show, basic_auth=args.basic_auth, cookie_secret=args.cookie_secret,
        oauth_provider=args.oauth_provider,
    )
    return serve(settings)


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
    tp.add_argument("--distribution-weights", default=None,
                    help="weight of each --data in the N(0, 1) terms (default: the shares), e.g. 1,0,0")
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

    td = tsub.add_parser("diffusion", help="train the EDM diffusion downscaler on PP and write a checkpoint")
    td.add_argument("--data", default=None, help="fine dataset (default: the embedded synthetic one)")
    td.add_argument("--pp-checkpoint", default=None, help="PP checkpoint name or directory (default: the shipped one)")
    td.add_argument("--target", choices=["pp", "tp"], default="pp",
                    help="what the model generates: PP (default) or the transform log1p(tp/0.1), "
                         "standardised (the no-PP control; see ppviz.tp_target)")
    td.add_argument("--out", required=True, help="checkpoint directory to write")
    td.add_argument("--state-dir", default=None, help="resumable training state (default: .OUT.train beside --out)")
    td.add_argument("--resume", action="store_true", help="continue from the state in --state-dir")
    td.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint at --out")
    td.add_argument("--steps", type=int, default=2000)
    td.add_argument("--batch", type=int, default=8)
    td.add_argument("--crop", type=int, default=64, help="crop side in 0.25 deg cells")
    td.add_argument("--lr", type=float, default=5e-4)
    td.add_argument("--base-channels", type=int, default=32)
    td.add_argument("--channel-mult", default="1,2,2")
    td.add_argument("--blocks", type=int, default=1, help="residual blocks per level")
    td.add_argument("--sigma-data", type=float, default=None, help="default: the residual's std on the data")
    td.add_argument("--seed", type=int, default=0)
    td.add_argument("--holdout", type=float, default=0.2, help="held-out fraction of days")
    td.add_argument("--eval-dates", type=int, default=6, help="held-out dates scored into the model card")
    td.add_argument("--eval-members", type=int, default=4)
    td.add_argument("--eval-region", default="europe")
    td.add_argument("--default", action="store_true", help="mark as the default diffusion checkpoint")
    td.add_argument("--command-line", default=None, help=argparse.SUPPRESS)
    td.set_defaults(func=_cmd_train_diffusion)

    ds_ = sub.add_parser("downscale", help="downscale coarse PP to an ensemble of 0.25 deg tp fields")
    ds_.add_argument("--data", default=None, help="dataset (default: the embedded synthetic one)")
    ds_.add_argument("--start", required=True, help="first time, e.g. 2021-02-20T12")
    ds_.add_argument("--end", default=None, help="last time (inclusive; default: just --start)")
    ds_.add_argument("--region", default="europe", help="region name (ppviz regions) or lat0,lat1,lon0,lon1")
    ds_.add_argument("--members", type=int, default=4)
    ds_.add_argument("--steps", type=int, default=18, help="Heun steps")
    ds_.add_argument("--churn", type=float, default=0.0, help="Heun stochastic churn (EDM S_churn)")
    ds_.add_argument("--seed", type=int, default=0)
    ds_.add_argument("--coarse-from", choices=["fine", "coarse"], default="fine",
                     help="coarse PP from block-averaged fine PP (as in training) or from encoded coarse tp/vimd")
    ds_.add_argument("--checkpoint", default=None, help="diffusion checkpoint name or directory")
    ds_.add_argument("--pp-checkpoint", default=None, help="PP checkpoint name or directory")
    ds_.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    ds_.add_argument("--scheduler", default=None, help="dask scheduler address (default: a LocalCluster for several times)")
    ds_.add_argument("--workers", type=int, default=None, help="LocalCluster workers (0: run in this process)")
    ds_.add_argument("--out", required=True, help="output .nc or .zarr")
    ds_.set_defaults(func=_cmd_downscale)

    ev = sub.add_parser("evaluate", help="score a `ppviz downscale` output: metrics.json, metrics.nc, PNG figures")
    ev.add_argument("--ensemble", required=True, help="a ppviz downscale output (.nc or .zarr) with tp_truth")
    ev.add_argument("--out", required=True, help="output directory")
    ev.add_argument("--baselines", default=None,
                    help="comma-separated baselines to score (default: bicubic,nearest,pp_bicubic; 'none': none)")
    ev.add_argument("--workers", type=int, default=None, help="dask LocalCluster workers (default: in this process)")
    ev.add_argument("--scheduler", default=None, help="dask scheduler address")
    ev.add_argument("--time-chunk", type=int, default=8, help="time steps per chunk (task)")
    ev.add_argument("--max-map-dates", type=int, default=4, help="dates in the map figure (0: no maps)")
    ev.set_defaults(func=_cmd_evaluate)

    en = sub.add_parser("encode", help="write PP and the decoded tp beside the input")
    en.add_argument("--data", default=None, help="dataset (default: the embedded synthetic one)")
    en.add_argument("--start", default=None)
    en.add_argument("--end", default=None)
    en.add_argument("--pp-checkpoint", default=None)
    en.add_argument("--out", required=True, help="output .nc or .zarr")
    en.set_defaults(func=_cmd_encode)

    r = sub.add_parser("regions", help="list the named regions")
    r.set_defaults(func=_cmd_regions)

    sv = sub.add_parser("serve", help="run the dashboard (secure defaults; see docs/deploy.md)",
                        description="Run the dashboard with panel serve. Each flag falls back to the "
                                    "environment variable named in its help, then to the default.")
    sv.add_argument("--port", type=int, default=None, help="1..65535 ($PPVIZ_PORT, default 5006)")
    sv.add_argument("--address", default=None,
                    help="address to bind ($PPVIZ_ADDRESS, default 127.0.0.1; 0.0.0.0 = all interfaces)")
    sv.add_argument("--allow-websocket-origin", action="append", default=None, metavar="HOST[:PORT]",
                    help="host allowed to open the websocket, repeatable ($PPVIZ_ALLOWED_ORIGINS, "
                         "comma-separated; default localhost:PORT and 127.0.0.1:PORT)")
    sv.add_argument("--num-procs", type=int, default=None, help="worker processes ($PPVIZ_NUM_PROCS, default 1)")
    sv.add_argument("--prefix", default=None, help="URL prefix behind a proxy, e.g. /ppviz ($PPVIZ_PREFIX)")
    sv.add_argument("--use-xheaders", action="store_true",
                    help="trust X-Forwarded-* headers from a reverse proxy ($PPVIZ_USE_XHEADERS)")
    sv.add_argument("--basic-auth", default=None, metavar="PASSWORD|FILE.json",
                    help="require a login: one password, or a JSON file {\"user\": \"password\"} "
                         "($PPVIZ_BASIC_AUTH; prefer the variable or a file, a flag shows in ps)")
    sv.add_argument("--cookie-secret", default=None,
                    help="secret that signs login cookies ($PPVIZ_COOKIE_SECRET; default: random per start)")
    sv.add_argument("--oauth-provider", default=None,
                    help="Panel OAuth provider, e.g. github ($PPVIZ_OAUTH_PROVIDER; key and secret from "
                         "$PPVIZ_OAUTH_KEY / $PPVIZ_OAUTH_SECRET)")
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
