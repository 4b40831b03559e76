"""The architecture of docs/architecture.md, checked on the source: no import cycle, layers, light pages.

Every ``import``/``from ... import`` anywhere in a module of ``ppviz/`` counts, function-level
imports included (they hide cycles, they do not remove them); relative imports are resolved.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "ppviz"

#: Layers, lowest first (docs/architecture.md). A module may import its own layer and lower ones.
LAYERS: list[tuple[str, ...]] = [
    ("ppviz", "ppviz.constants", "ppviz.env", "ppviz.io", "ppviz.safe_text", "ppviz.resources"),
    ("ppviz.data",),
    ("ppviz.spectral", "ppviz.maps", "ppviz.gibbs", "ppviz.baselines"),
    ("ppviz.metrics",),
    ("ppviz.models", "ppviz.checkpoints", "ppviz.tp_target"),
    ("ppviz.diffusion",),
    ("ppviz.request", "ppviz.pipeline", "ppviz.jobs", "ppviz.training"),
    ("ppviz.evaluation",),
    ("ppviz.views",),
    ("ppviz.cli", "ppviz.serve", "ppviz.serve_probe", "ppviz.serve_setup", "ppviz.http_headers", "ppviz.__main__"),
]
#: Within the pipeline layer: the training uses the pipeline (held-out scores on its exact inference
#: path); the request, the pipeline and the queue never use the training.
NEVER = {("ppviz.request", "ppviz.training"), ("ppviz.pipeline", "ppviz.training"), ("ppviz.jobs", "ppviz.training")}
FORBIDDEN_PACKAGES = ("panel",)


def _modules() -> dict[str, tuple[Path, bool]]:
    mods = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        mods[".".join(parts)] = (path, is_pkg)
    return mods


MODULES = _modules()


def _owner(name: str) -> str | None:
    """The module of ``ppviz`` that importing ``name`` loads (the longest known prefix)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str) -> list[tuple[str, int]]:
    """``(imported name, line)`` of every import statement in ``module``, relative ones resolved."""
    path, is_pkg = MODULES[module]
    package = module if is_pkg else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out.extend((a.name, node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for a in node.names:  # `from pkg import submodule` imports the submodule
                full = f"{target}.{a.name}"
                out.append((full if full in MODULES else target, node.lineno))
    return out


def _graph() -> dict[str, dict[str, int]]:
    graph: dict[str, dict[str, int]] = {}
    for m in MODULES:
        edges: dict[str, int] = {}
        for name, line in _imports(m):
            if name == "ppviz" or name.startswith("ppviz."):
                dep = _owner(name)
                if dep is not None and dep != m:
                    edges.setdefault(dep, line)
        graph[m] = edges
    return graph


def _find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for dep in sorted(graph.get(m, {})):
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def _layer(module: str) -> int:
    best, rank = -1, None
    for i, names in enumerate(LAYERS):
        for n in names:
            if (module == n or module.startswith(n + ".")) and len(n) > best:
                best, rank = len(n), i
    assert rank is not None, f"{module} is in no layer of tests/test_architecture.py (add it, and to docs/architecture.md)"
    return rank


def _in(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def test_find_cycle_finds_a_cycle():
    assert _find_cycle({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b": 1}, "b": {}}) is None


def test_no_import_cycle():
    graph = _graph()
    assert len(graph) > 40 and graph["ppviz.pipeline"]  # the parser sees the package
    cycle = _find_cycle(graph)
    if cycle:
        steps = [f"{a} (line {graph[a][b]}) -> {b}" for a, b in zip(cycle, cycle[1:])]
        pytest.fail("import cycle among ppviz modules: " + "; ".join(steps))


def test_lower_layers_never_import_higher_ones():
    bad = []
    for m, edges in _graph().items():
        for dep, line in edges.items():
            if _layer(dep) > _layer(m):
                bad.append(f"{MODULES[m][0].relative_to(REPO)}:{line}: {m} (layer {_layer(m)}) imports {dep} "
                           f"(layer {_layer(dep)})")
            if any(_in(m, a) and _in(dep, b) for a, b in NEVER):
                bad.append(f"{MODULES[m][0].relative_to(REPO)}:{line}: {m} imports {dep}")
    assert not bad, "\n".join(bad)


def test_library_never_imports_panel():
    bad = [f"{MODULES[m][0].relative_to(REPO)}:{line}: {name}" for m in MODULES for name, line in _imports(m)
           if name.split(".")[0] in FORBIDDEN_PACKAGES]
    assert not bad, "ppviz must stay importable headless, without Panel:\n" + "\n".join(bad)


def test_pages_import_no_torch():
    """Importing every page module app.py uses (and the library modules it imports) loads no torch:
    torch comes in only when a model is needed."""
    tree = ast.parse((REPO / "app.py").read_text(encoding="utf-8"))
    names = sorted({n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
                    and n.module.split(".")[0] in ("pages", "ppviz")})
    names += sorted(f"pages.{p.stem}" for p in (REPO / "pages").glob("*.py") if p.stem != "__init__")
    assert "pages.downscale" in names
    code = textwrap.dedent(f"""
        import importlib, sys
        for name in {names!r}:
            importlib.import_module(name)
            assert 'torch' not in sys.modules, name + ' imported torch'
        print('ok', len({names!r}))
    """)
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    assert res.returncode == 0 and res.stdout.startswith("ok"), res.stderr[-3000:]
