"""Shared test setup: a private data cache with a short synthetic default, and ../shared lookups."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
ERA5_SAMPLE = SHARED / "era5-sample"
NATURAL_EARTH = SHARED / "natural-earth"


def pytest_configure(config):
    # A short embedded dataset in a private cache, so tests never touch the user's ~/.cache.
    os.environ.setdefault("PPVIZ_DATA_DIR", tempfile.mkdtemp(prefix="ppviz-test-data-"))
    os.environ.setdefault("PPVIZ_SYNTH_DAYS", "3")
    if NATURAL_EARTH.is_dir():
        os.environ.setdefault("PPVIZ_NATURAL_EARTH", str(NATURAL_EARTH))


def pytest_collection_modifyitems(config, items):
    """`bench` tests need the bench extra (pysteps): they run only when -m names them (`make bench`
    runs ``pytest -m bench``); any other run, `make test` included, deselects them (pytest reports
    them as deselected, not skipped)."""
    if "bench" in (config.getoption("markexpr", "") or ""):
        return
    keep = [item for item in items if item.get_closest_marker("bench") is None]
    if len(keep) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if item.get_closest_marker("bench")])
        items[:] = keep


def require_shared(path: Path) -> Path:
    """Skip when ``path`` is missing, but fail loudly in CI (CI=true), where it must exist."""
    if not path.exists():
        msg = f"{path} is missing (../shared beside the checkout)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def era5_sample() -> Path:
    return require_shared(ERA5_SAMPLE)


@pytest.fixture(scope="session")
def natural_earth() -> Path:
    return require_shared(NATURAL_EARTH)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, request):
    """A tiny untrained diffusion checkpoint (:mod:`ppviz.diffusion.tiny`) registered through
    PPVIZ_CHECKPOINTS for the module; its name, e.g. ``tiny-test_explore``."""
    from ppviz.diffusion.tiny import save_tiny_diffusion

    name = f"tiny-{request.module.__name__.rsplit('.', 1)[-1]}"
    root = tmp_path_factory.mktemp("ckpt")
    save_tiny_diffusion(root, name)
    mp = pytest.MonkeyPatch()
    mp.setenv("PPVIZ_CHECKPOINTS", str(root))
    yield name
    mp.undo()


@pytest.fixture
def run_cli(capsys):
    """``run_cli(*argv)`` runs ``ppviz argv`` in-process; returns (exit status, stdout, stderr)."""
    from ppviz.cli import main

    def run(*argv):
        code = main([str(a) for a in argv])
        cap = capsys.readouterr()
        return code, cap.out, cap.err

    return run
