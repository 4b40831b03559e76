"""``ppviz checkpoints promote``: register a training run's snapshot as a checkpoint."""

from __future__ import annotations

from ppviz.cli.common import command_group


def _cmd_promote(args) -> int:
    from ppviz.training.snapshots import promote_snapshot

    path = promote_snapshot(args.run, args.step, args.out, overwrite=args.overwrite)
    print(f"checkpoint: {path} (snapshot step {args.step} of {args.run})")
    return 0


def add_parsers(sub) -> None:
    """Add ``ppviz checkpoints`` to ``sub`` (the ``ppviz`` subparsers)."""
    csub = command_group(sub, "checkpoints", "manage checkpoints made by training runs")
    pr = csub.add_parser("promote", help="register a snapshot of a training run as a checkpoint with a model card")
    pr.add_argument("run", help="the run directory (the --state-dir of ppviz train diffusion)")
    pr.add_argument("--step", type=int, required=True, help="the snapshot's step")
    pr.add_argument("--out", required=True, help="checkpoint directory to write (e.g. in $PPVIZ_CHECKPOINTS)")
    pr.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint at --out")
    pr.set_defaults(func=_cmd_promote)
