"""``ppviz train pp``, ``ppviz train diffusion`` and ``ppviz train distill``: parse, check, call :mod:`ppviz.training.run`."""

from __future__ import annotations

import argparse

from ppviz.cli.common import UserError, check_range, command_group, command_line


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
    from ppviz.training.run import train_pp_checkpoint

    for name, value, lo, hi in (("--steps", args.steps, 1, 10**7), ("--batch", args.batch, 16, 10**7),
                                ("--hidden", args.hidden, 2, 4096), ("--depth", args.depth, 1, 16)):
        check_range(name, value, lo, hi)
    data = args.data or ["default"]
    shares = _parse_shares(args.shares, len(data))
    dist_w = _parse_shares(args.distribution_weights, len(data)) if args.distribution_weights else None
    path, scores = train_pp_checkpoint(args.out, data=data, shares=shares, distribution_weights=dist_w,
                                       steps=args.steps, batch=args.batch, lr=args.lr, hidden=args.hidden,
                                       depth=args.depth, seed=args.seed, holdout=args.holdout, default=args.default,
                                       command=command_line(args))
    print(format_scores(scores))
    print(f"checkpoint: {path}")
    return 0


def _cmd_train_diffusion(args) -> int:
    from ppviz.training.run import train_diffusion_checkpoint

    for name, value, lo, hi in (("--steps", args.steps, 0, 10**7), ("--batch", args.batch, 1, 4096),
                                ("--crop", args.crop, 16, 1024), ("--base-channels", args.base_channels, 4, 512),
                                ("--eval-dates", args.eval_dates, 0, 1000), ("--eval-members", args.eval_members, 2, 64),
                                ("--workers", args.workers, 0, 64), ("--log-every", args.log_every, 1, 10**7),
                                ("--ckpt-every", args.ckpt_every or 1, 1, 10**7),
                                ("--snapshot-every", args.snapshot_every, 0, 10**7),
                                ("--snapshot-hours", args.snapshot_hours, 1, 100),
                                ("--snapshot-seeds", args.snapshot_seeds, 1, 16)):
        check_range(name, value, lo, hi)
    if args.max_minutes is not None and not 0 < args.max_minutes <= 10**6:
        raise UserError(f"--max-minutes {args.max_minutes} must be a number of minutes > 0")
    try:
        mult = tuple(int(x) for x in args.channel_mult.split(","))
    except ValueError:
        raise UserError(f"--channel-mult {args.channel_mult!r} must be integers separated by commas, e.g. 1,2,2") from None
    train_diffusion_checkpoint(
        args.out, data=args.data, pp_checkpoint=args.pp_checkpoint, target=args.target, state_dir=args.state_dir,
        resume=args.resume, overwrite=args.overwrite, steps=args.steps, batch=args.batch, crop=args.crop, lr=args.lr,
        base_channels=args.base_channels, channel_mult=mult, blocks=args.blocks, sigma_data=args.sigma_data,
        seed=args.seed, holdout=args.holdout, eval_dates=args.eval_dates, eval_members=args.eval_members,
        eval_region=args.eval_region, default=args.default, command=command_line(args), loader=args.loader,
        workers=args.workers, amp=not args.no_amp, compile=args.compile, log_every=args.log_every,
        ckpt_every=args.ckpt_every, snapshot_every=args.snapshot_every, snapshot_hours=args.snapshot_hours,
        snapshot_seeds=args.snapshot_seeds, max_minutes=args.max_minutes)
    return 0


def _cmd_train_distill(args) -> int:
    from ppviz.training.run import distill_checkpoint

    for name, value, lo, hi in (("--teacher-steps", args.teacher_steps, 2, 1024),
                                ("--steps-per-round", args.steps_per_round, 1, 10**7), ("--batch", args.batch, 1, 4096),
                                ("--crop", args.crop, 16, 1024), ("--workers", args.workers, 0, 64),
                                ("--log-every", args.log_every, 1, 10**7)):
        check_range(name, value, lo, hi)
    if args.lr <= 0:
        raise UserError(f"--lr {args.lr} must be > 0")
    if args.threads is not None:
        import torch

        check_range("--threads", args.threads, 1, 256)
        torch.set_num_threads(args.threads)
    distill_checkpoint(args.teacher, args.out, data=args.data, teacher_steps=args.teacher_steps, rounds=args.rounds,
                       steps_per_round=args.steps_per_round, batch=args.batch, crop=args.crop, lr=args.lr,
                       seed=args.seed, holdout=args.holdout, default_steps=args.default_steps,
                       state_dir=args.state_dir, overwrite=args.overwrite, workers=args.workers,
                       log_every=args.log_every, anchor_fraction=args.anchor_fraction, command=command_line(args))
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


def add_parsers(sub) -> None:
    """Add ``ppviz train`` to ``sub`` (the ``ppviz`` subparsers)."""
    tsub = command_group(sub, "train", "train the PP encoder-decoder or the diffusion downscaler")
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
    td.add_argument("--eval-region", default=None, help="region of the held-out scores (default: the extent of the data)")
    td.add_argument("--loader", choices=["stream", "memory"], default="stream",
                    help="stream: read crops lazily from the data with --workers processes (memory bounded by "
                         "chunk and batch sizes); memory: encode the whole training span into RAM first")
    td.add_argument("--workers", type=int, default=2, help="data-loading processes of --loader stream (0: none)")
    td.add_argument("--log-every", type=int, default=50, help="steps between training log lines")
    td.add_argument("--ckpt-every", type=int, default=None, help="steps between resume states (default min(500, steps))")
    td.add_argument("--snapshot-every", type=int, default=0,
                    help="steps between snapshots (EMA checkpoint + held-out scores in the log); 0: none")
    td.add_argument("--snapshot-hours", type=int, default=2, help="held-out hours each snapshot is scored on")
    td.add_argument("--snapshot-seeds", type=int, default=1, help="seeds each snapshot is scored with")
    td.add_argument("--no-amp", action="store_true", help="no bf16 autocast on CUDA (it is never used on the CPU)")
    td.add_argument("--compile", action="store_true", help="torch.compile the model (CUDA only)")
    td.add_argument("--max-minutes", type=float, default=None,
                    help="stop training after this many minutes (wall clock), then score and write the checkpoint "
                         "of the step reached; --resume continues towards --steps")
    td.add_argument("--default", action="store_true", help="mark as the default diffusion checkpoint")
    td.add_argument("--command-line", default=None, help=argparse.SUPPRESS)
    td.set_defaults(func=_cmd_train_diffusion)

    tk = tsub.add_parser("distill", help="distil a diffusion checkpoint into a few-step student (progressive "
                                         "distillation) and write it as a checkpoint")
    tk.add_argument("--teacher", required=True, help="diffusion checkpoint name or directory to distil")
    tk.add_argument("--out", required=True, help="checkpoint directory to write")
    tk.add_argument("--data", default=None, help="fine dataset (default: the embedded synthetic one)")
    tk.add_argument("--teacher-steps", type=int, default=16,
                    help="Euler steps of the teacher on its Karras grid (a power of 2)")
    tk.add_argument("--rounds", type=int, default=None, help="halvings of the steps (default: down to 1 step)")
    tk.add_argument("--steps-per-round", type=int, default=300, help="Adam steps per round")
    tk.add_argument("--batch", type=int, default=8)
    tk.add_argument("--crop", type=int, default=64, help="crop side in 0.25 deg cells")
    tk.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate, decayed linearly to 0 in each round")
    tk.add_argument("--seed", type=int, default=0)
    tk.add_argument("--holdout", type=float, default=0.2, help="held-out fraction of days (never distilled on)")
    tk.add_argument("--default-steps", type=int, default=None,
                    help="the student's default step count (one of its stored ones; default: the most)")
    tk.add_argument("--state-dir", default=None, help="finished rounds' weights (default: .OUT.distill beside --out); "
                                                      "a rerun resumes after the last finished round")
    tk.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint at --out")
    tk.add_argument("--workers", type=int, default=1, help="data-loading processes (0: none)")
    tk.add_argument("--log-every", type=int, default=25, help="steps between log lines")
    tk.add_argument("--anchor-fraction", type=float, default=0.0,
                    help="share of each batch that keeps the stored 2- and 4-step grids' other levels at the "
                         "earlier rounds' models (0: plain progressive distillation)")
    tk.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: torch's; on a busy shared CPU 1 avoids oversubscription)")
    tk.add_argument("--command-line", default=None, help=argparse.SUPPRESS)
    tk.set_defaults(func=_cmd_train_distill)
