"""Start the dashboard (``app.py`` at the repository root) with ``panel serve``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "app.py"


def serve(port: int = 5006, address: str = "127.0.0.1", show: bool = False, extra_args=()) -> int:
    """Run ``panel serve app.py`` in the foreground and return its exit status."""
    if not APP.exists():
        raise FileNotFoundError(f"the dashboard entry {APP} is missing (ppviz serve runs from a checkout)")
    if not 1 <= port <= 65535:
        raise ValueError(f"--port {port} is out of range; allowed 1..65535")
    cmd = [sys.executable, "-m", "panel", "serve", str(APP), "--port", str(port), "--address", address,
           "--allow-websocket-origin", f"{address}:{port}", "--allow-websocket-origin", f"localhost:{port}", "--liveness"]
    if show:
        cmd.append("--show")
    cmd.extend(extra_args)
    print(f"ppviz dashboard on http://{address}:{port}/app", file=sys.stderr)
    return subprocess.call(cmd)
