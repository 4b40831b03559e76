"""``ppviz export onnx``: a ppviz diffusion checkpoint as an ONNX checkpoint (model.onnx + contract)."""

from __future__ import annotations

from pathlib import Path

from ppviz.cli.common import UserError, command_group


def _cmd_export_onnx(args) -> int:
    from ppviz.checkpoints import load_checkpoint
    from ppviz.diffusion.onnx_export import export_checkpoint

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise UserError(f"--out {args.out} exists; pass --overwrite to replace it")
    path = export_checkpoint(args.checkpoint, out, overwrite=args.overwrite)
    ckpt = load_checkpoint(path)  # what was written loads and checks out
    c = ckpt.config
    print(f"wrote {path}: model.onnx ({c['weights']['bytes']:,} bytes, opset {c['weights']['opset']}), config.json, "
          f"MODEL_CARD.md; max |onnxruntime - torch| on a test input "
          f"{c['extra']['export_check']['max_abs_diff_vs_torch']:.2e}")
    print(f"use it by name from a directory in $PPVIZ_CHECKPOINTS ({path.parent}), e.g. "
          f"ppviz downscale --checkpoint {path.name} ...")
    return 0


def add_parsers(sub) -> None:
    """Add ``export`` to ``sub`` (the ``ppviz`` subparsers)."""
    fmt = command_group(sub, "export", "export a checkpoint to another format", dest="format")
    onnx = fmt.add_parser("onnx", help="a diffusion checkpoint as model.onnx + config.json (the contract) + card")
    onnx.add_argument("checkpoint", help="diffusion checkpoint name or directory")
    onnx.add_argument("--out", required=True, help="the new checkpoint directory (its name is the checkpoint name)")
    onnx.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    onnx.set_defaults(func=_cmd_export_onnx)
