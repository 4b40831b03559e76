"""What every ``ppviz`` subcommand shares: the user-error type and argument checks."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path


def command_group(sub, name: str, help: str, dest: str | None = None):
    """``ppviz NAME ...``: a group of subcommands added to ``sub``; returns its subparsers."""
    group = sub.add_parser(name, help=help)
    return group.add_subparsers(dest=dest or f"{name}_command", required=True)


class UserError(Exception):
    """A problem with the user's input, reported as one line."""


def command_line(args) -> str:
    """The command as typed (for provenance): ``--command-line`` when given, else ``sys.argv``."""
    if getattr(args, "command_line", None):
        return args.command_line
    return "ppviz " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def check_range(name: str, value, lo, hi) -> None:
    if not lo <= value <= hi:
        raise UserError(f"{name} {value} is out of range; allowed {lo}..{hi}")


def output_path(text: str) -> Path:
    out = Path(text)
    if out.suffix not in (".nc", ".zarr"):
        raise UserError(f"--out {text!r} must end in .nc (netCDF) or .zarr")
    return out
