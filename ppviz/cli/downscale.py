"""``ppviz downscale`` and ``ppviz evaluate``: one :class:`ppviz.request.DownscaleRequest` from the arguments, run and scored."""

from __future__ import annotations

from ppviz.cli.common import UserError, check_range, command_line, output_path

def _request_from_args(args):
    from ppviz.data.regions import data_extent
    from ppviz.data.source import load_dataset
    from ppviz.request import DownscaleRequest

    region = args.region or data_extent(load_dataset(args.data)).slug_or_box
    request = DownscaleRequest(data=args.data, region=region, checkpoint=args.checkpoint,
                               pp_checkpoint=args.pp_checkpoint, time=args.start, end=args.end,
                               members=args.members, steps=args.steps, seed=args.seed, churn=args.churn,
                               coarse_from=args.coarse_from, device=args.device, sampler=args.sampler)
    request.check()
    return request


def _cmd_downscale(args) -> int:
    from ppviz.data.canonical import write_dataset
    from ppviz.data.source import load_dataset
    from ppviz.pipeline import Models, downscale, local_client

    out = output_path(args.out)
    job = _request_from_args(args)
    ds = load_dataset(job.data)
    times = job.times(ds)
    # fail on bad checkpoints and too few steps here, with one message, before any worker starts
    models = Models.load(job.checkpoint, job.pp_checkpoint, "cpu")
    if job.steps is not None:
        models.schedule.check_steps(job.steps, models.diffusion_name, job.sampler)
    client = None
    use_cluster = args.scheduler is not None or (len(times) > 1 and args.workers != 0)
    if use_cluster:
        from distributed import Client

        client = Client(args.scheduler) if args.scheduler else local_client(args.workers or None)
        print(f"dask: {client.dashboard_link if args.scheduler else 'LocalCluster'} with "
              f"{len(client.scheduler_info()['workers'])} workers")
    try:
        result = downscale(job, times, client=client, command=command_line(args))
    finally:
        if client is not None:
            cluster = getattr(client, "cluster", None)
            client.close()
            if cluster is not None:
                cluster.close()
    write_dataset(result, out)
    print(f"wrote {out}: {result.sizes['member']} members x {result.sizes['time']} times x "
          f"{result.sizes['lat']} x {result.sizes['lon']} ({result.attrs['region']}, "
          f"{result.attrs['steps']} {result.attrs['sampler'].split()[0]} steps, seed {result.attrs['seed']})")
    return 0


def _cmd_evaluate(args) -> int:
    from ppviz.evaluation import evaluate_ensemble, open_ensemble, parse_baselines, write_outputs
    from ppviz.evaluation.report import format_table

    check_range("--max-map-dates", args.max_map_dates, 0, 24)
    check_range("--time-chunk", args.time_chunk, 1, 10**6)
    if args.workers is not None and args.scheduler is not None:
        raise UserError("give --workers or --scheduler, not both")
    if args.workers is not None:
        check_range("--workers", args.workers, 0, 256)
    if (args.ensemble is None) == (args.predictions is None):
        raise UserError("give --ensemble or --predictions (one of them)")
    if args.ensemble is not None:
        extra = [f for f in ("truth", "var", "truth_var", "member_dim", "units") if getattr(args, f) is not None]
        if extra:
            raise UserError(f"--{extra[0].replace('_', '-')} goes with --predictions, not --ensemble")
        ds = open_ensemble(args.ensemble, time_chunk=args.time_chunk)
        names = parse_baselines(args.baselines, ds)
    else:
        from ppviz.data.predictions import open_predictions

        ds = open_predictions(args.predictions, truth=args.truth, var=args.var, truth_var=args.truth_var,
                              member_dim=args.member_dim, units=args.units, time_chunk=args.time_chunk)
        if ds.sizes["member"] < 2:
            raise UserError(f"{args.predictions} has {ds.sizes['member']} member; the ensemble scores need at least 2")
        names = parse_baselines(args.baselines or "none", ds)
    client = None
    if args.scheduler or args.workers:
        from distributed import Client

        from ppviz.evaluation import local_cluster_client

        client = Client(args.scheduler) if args.scheduler else local_cluster_client(args.workers)
        print(f"dask: {args.scheduler or 'LocalCluster'} with {len(client.scheduler_info()['workers'])} workers")
    try:
        ev = evaluate_ensemble(ds, baselines=names, client=client, time_chunk=args.time_chunk,
                               gibbs=args.ensemble is not None)
    finally:
        if client is not None:
            cluster = getattr(client, "cluster", None)
            client.close()
            if cluster is not None and not args.scheduler:
                cluster.close()
    paths = write_outputs(ev, ds, args.out, max_map_dates=args.max_map_dates)
    model = ev.settings.get('diffusion_checkpoint') or ev.settings.get('predictions_var', '?')
    print(f"{args.ensemble or args.predictions}: {ev.settings['n_times']} times x {ev.settings['n_members']} members "
          f"({ev.settings.get('time_step', 'hourly')}), region {ev.settings.get('region', '?')}, model {model}")
    print(format_table(ev.scalars, ev.gibbs))
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def add_parsers(sub) -> None:
    """Add this module's subcommands to ``sub`` (the ``ppviz`` subparsers)."""
    ds_ = sub.add_parser("downscale", help="downscale coarse PP to an ensemble of 0.25 deg tp fields")
    ds_.add_argument("--data", default=None, help="dataset path or name: synthetic, era5-sample (default: $PPVIZ_DATA, else synthetic)")
    ds_.add_argument("--start", required=True, help="first time, e.g. 2021-02-20T12")
    ds_.add_argument("--end", default=None, help="last time (inclusive; default: just --start)")
    ds_.add_argument("--region", default=None,
                     help="region name (ppviz regions) or lat0,lat1,lon0,lon1 (default: the extent of the data)")
    ds_.add_argument("--members", type=int, default=4)
    ds_.add_argument("--steps", type=int, default=None,
                     help="sampler steps (default: the checkpoint's schedule.default_steps; fewer than its "
                          "min_steps of the sampler are refused)")
    ds_.add_argument("--sampler", default=None,
                     help="sampler: heun, euler, dpmpp_2m or euler_maruyama (default: the checkpoint's schedule.sampler)")
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

    ev = sub.add_parser("evaluate", help="score a `ppviz downscale` output or predictions made elsewhere: "
                                         "metrics.json, metrics.nc, PNG figures")
    ev.add_argument("--ensemble", default=None, help="a ppviz downscale output (.nc or .zarr) with tp_truth")
    ev.add_argument("--predictions", default=None,
                    help="an ensemble from another system (netCDF with groups, or zarr): CorrDiff, Earth2Studio, CF, "
                         "cfgrib layouts")
    ev.add_argument("--truth", default=None, help="file with the truth (default: <var>_truth or truth/<var> in "
                                                  "the predictions file)")
    ev.add_argument("--var", default=None, help="predictions variable, NAME or GROUP/NAME (default: found by CF "
                                                "standard_name, then tp, pr, precip, total_precipitation)")
    ev.add_argument("--truth-var", default=None, help="truth variable, NAME or GROUP/NAME")
    ev.add_argument("--member-dim", default=None,
                    help="ensemble dim (default: member, ensemble, sample, number or realization)")
    ev.add_argument("--units", default=None, help="UDUNITS units of the predictions, overriding the file's and "
                                                  "filling in a truth without units, e.g. 'mm h-1', 'kg m-2 s-1', 'm'")
    ev.add_argument("--out", required=True, help="output directory")
    ev.add_argument("--baselines", default=None,
                    help="comma-separated baselines to score (default: bicubic,nearest,pp_bicubic; 'none': none)")
    ev.add_argument("--workers", type=int, default=None, help="dask LocalCluster workers (default: in this process)")
    ev.add_argument("--scheduler", default=None, help="dask scheduler address")
    ev.add_argument("--time-chunk", type=int, default=8, help="time steps per chunk (task)")
    ev.add_argument("--max-map-dates", type=int, default=4, help="dates in the map figure (0: no maps)")
    ev.set_defaults(func=_cmd_evaluate)
