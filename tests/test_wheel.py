"""The wheel is the whole application: `pip install .` (not editable) gives ppviz with its shipped
checkpoints and a working `ppviz serve`.

The wheel is built (`pip wheel --no-deps`) from a clean copy of the sources and installed with
`--no-deps` into a fresh virtual environment. That environment borrows the test environment's
*dependencies* (a ``.pth`` line naming its site-packages, after the new environment's own, so
nothing is downloaded again), but never its ppviz: an editable install's import hook is not
loaded through a plain path line, PYTHONPATH is cleared, and every command runs from a directory
outside the checkout. The test checks that ppviz, the dashboard and the checkpoints all come from
the new environment, then runs `ppviz downscale` on the shipped checkpoints and `ppviz serve` to
`/liveness` and `/app`.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHIPPED = ("edm-pp-v1", "edm-tp-v1", "edm-pp-v2", "edm-tp-v2", "pp-mlp-v1")
CHECKPOINT_FILES = ("config.json", "model.safetensors", "MODEL_CARD.md", "training_log.jsonl")

pytestmark = pytest.mark.timeout(300)


def _sources(dst: Path) -> Path:
    """A clean copy of the checkout: what `pip install .` sees on a fresh clone (a stale build/ of an
    earlier in-tree build, a .venv or other ignored files cannot leak into the wheel). With git,
    the tracked and untracked-but-not-ignored files; without, the tree minus the usual leftovers.
    Tests, benchmarks and docs are left out (not part of the wheel; only for speed)."""
    leave_out = ("tests/", "benchmarks/", "docs/")
    r = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                       capture_output=True, timeout=60) if shutil.which("git") else None
    if r is not None and r.returncode == 0 and r.stdout:
        for rel in sorted(set(r.stdout.decode().split("\0")) - {""}):
            if rel.startswith(leave_out) or not (REPO / rel).is_file():
                continue
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dst / rel)
        return dst
    skip = {".venv", "build", "dist", ".git", ".pytest_cache", "__pycache__", *(p.rstrip("/") for p in leave_out)}

    def ignore(directory, names):
        return [n for n in names if n in skip or n.endswith((".egg-info", ".pyc")) or
                (n.startswith(".") and Path(directory).name == "pretrained")]

    shutil.copytree(REPO, dst, ignore=ignore)
    return dst


def _setuptools_ok() -> bool:
    try:
        return int(metadata.version("setuptools").split(".")[0]) >= 68
    except metadata.PackageNotFoundError:
        return False


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "PPVIZ_CHECKPOINTS", "VIRTUAL_ENV")
           and not k.startswith(("PANEL_", "BOKEH_", "PPVIZ_DEFAULT_"))}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("wheel")
    src = _sources(root / "src")
    out = root / "dist"
    # the test environment's setuptools (torch already needs >= 77) when recent enough: no download
    isolation = [] if not _setuptools_ok() else ["--no-build-isolation"]
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q", "-w", str(out), str(src)],
                       capture_output=True, text=True, timeout=240, env=_env())
    assert r.returncode == 0, r.stdout + r.stderr
    (whl,) = out.glob("ppviz-*.whl")
    return whl


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("venv")
    env_dir = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True, timeout=60)
    py = env_dir / "bin" / "python"
    purelib = Path(subprocess.check_output(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip())
    # the dependencies of the test environment, after this environment's own site-packages
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (purelib / "zz_ppviz_test_deps.pth").write_text("".join(f"{d}\n" for d in sorted(deps)))
    r = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index",
                        "-q", str(wheel)], capture_output=True, text=True, timeout=180, env=_env())
    assert r.returncode == 0, r.stdout + r.stderr
    work = root / "work"  # outside the checkout: nothing there to import by accident
    work.mkdir()
    assert REPO not in work.parents
    return {"dir": env_dir, "python": py, "bin": env_dir / "bin", "purelib": purelib, "work": work}


def test_the_wheel_carries_library_dashboard_and_checkpoints(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "ppviz/__init__.py" in names and "ppviz/cli/__init__.py" in names and "ppviz/resources.py" in names
    assert "ppviz/dashboard/app.py" in names
    assert "ppviz/assets/era5-sample.nc" in names and "ppviz/assets/README.md" in names  # the ERA5 sample
    pages = {p.name for p in (REPO / "pages").glob("*.py")}
    assert pages and {f"ppviz/dashboard/pages/{p}" for p in pages} <= names
    for name in SHIPPED:
        for f in CHECKPOINT_FILES:
            assert f"ppviz/pretrained/{name}/{f}" in names, f"{name}/{f} missing from the wheel"
    # everything under the ppviz namespace: no top-level pages/, app.py or pretrained/ in site-packages
    tops = {n.split("/", 1)[0] for n in names}
    assert tops == {"ppviz", "ppviz-{}.dist-info".format(wheel.name.split("-")[1])}, tops
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or "/setup.py" in n]


def test_installed_ppviz_is_the_wheel_not_the_checkout(venv):
    code = ("import json, ppviz, ppviz.resources as r, ppviz.checkpoints as c, importlib.util as u; "
            "print(json.dumps({'ppviz': ppviz.__file__, 'app': str(r.APP), 'installed': r.INSTALLED, "
            "'dirs': [str(d) for d in c.checkpoint_dirs()], "
            "'names': sorted(i.name for i in c.list_checkpoints() if not i.error), "
            "'pages': u.find_spec('pages') is not None}))")
    r = subprocess.run([str(venv["python"]), "-c", code], cwd=venv["work"], env=_env(),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout.strip().splitlines()[-1])
    site = venv["purelib"]
    assert Path(info["ppviz"]).is_relative_to(site), info
    assert info["installed"] and Path(info["app"]) == site / "ppviz" / "dashboard" / "app.py"
    assert info["dirs"] == [str(site / "ppviz" / "pretrained")]
    assert set(SHIPPED) <= set(info["names"])
    assert not info["pages"], "a top-level `pages` package is importable outside the dashboard"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_downscale_runs_on_the_shipped_checkpoints(venv, tmp_path):
    import xarray as xr

    out = venv["work"] / "ens.nc"
    cmd = [str(venv["bin"] / "ppviz"), "downscale", "--start", "2021-01-02T12", "--region", "sample",
           "--members", "2", "--steps", "4", "--workers", "0", "--device", "cpu", "--out", str(out)]
    r = subprocess.run(cmd, cwd=venv["work"], env=_env(PPVIZ_DATA_DIR=str(tmp_path / "data"), PPVIZ_SYNTH_DAYS="3"),
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert "wrote" in r.stdout + r.stderr
    with xr.open_dataset(out) as ds:
        attrs = dict(ds.attrs)
        assert ds.sizes["member"] == 2
    assert attrs["diffusion_checkpoint"] == "edm-pp-v2" and attrs["pp_checkpoint"] == "pp-mlp-v1"
    # the very weights of the checkout's pretrained/, read from the installed copy
    installed = venv["purelib"] / "ppviz" / "pretrained"
    for name in ("edm-pp-v2", "pp-mlp-v1"):
        assert _sha256(installed / name / "model.safetensors") == _sha256(REPO / "pretrained" / name / "model.safetensors")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(port: int, path: str, timeout: float = 10) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def test_serve_answers_liveness_and_the_app(venv, tmp_path):
    from test_serve import stop_server  # SIGTERM (passed on to panel serve), then SIGKILL leftovers

    from ppviz.serve_probe import liveness_url, wait_for_liveness  # the test's own ppviz: only polls

    port = _free_port()
    log = tmp_path / "serve.log"
    env = _env(PPVIZ_DATA_DIR=str(tmp_path / "data"), PPVIZ_SYNTH_DAYS="3", PPVIZ_ADDRESS="127.0.0.1")
    with open(log, "w") as fh:
        proc = subprocess.Popen([str(venv["bin"] / "ppviz"), "serve", "--port", str(port)], cwd=venv["work"],
                                env=env, stdout=fh, stderr=subprocess.STDOUT)
    try:
        body = wait_for_liveness(proc, liveness_url(port), timeout=120, log=log)
        assert json.loads(body) == {"/liveness": True}
        # the app itself: app.py from the wheel imports its pages (ppviz/dashboard/pages) and builds
        status, page = _get(port, "/app", timeout=120)
        text = log.read_text()
        assert status == 200, text[-3000:]
        assert "Traceback" not in text and "Error running application handler" not in text, text[-3000:]
        assert b"bokeh" in page.lower()
        assert "ppviz dashboard on" in text
    finally:
        stop_server(proc)
    assert proc.poll() is not None
