"""The ``ppviz`` command line: thin commands over the library, one module per group of subcommands.

:mod:`ppviz.cli.data` (``data``, ``gibbs``, ``encode``, ``regions``), :mod:`ppviz.cli.train`
(``train pp``, ``train diffusion``), :mod:`ppviz.cli.downscale` (``downscale``, ``evaluate``),
:mod:`ppviz.cli.export` (``export onnx``), :mod:`ppviz.cli.dashboard` (``serve``). Each parses and checks its arguments and calls the library.
Every failure a user can cause ends in one line ``ppviz: error: ...`` on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys

from ppviz.cli import dashboard, data, downscale, export, train
from ppviz.cli.common import UserError

__all__ = ["UserError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ppviz", description="Pseudo-precipitation downscaling over Europe.")
    sub = p.add_subparsers(dest="command", required=True)
    for group in (data, train, downscale, export, dashboard):
        group.add_parsers(sub)
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
