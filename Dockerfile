# syntax=docker/dockerfile:1
# ppviz dashboard image, two variants from one file (see docs/deploy.md):
#
#   docker build -t ppviz:cpu .                                   # python:3.11-slim + CPU torch
#   docker build --build-arg VARIANT=cuda -t ppviz:cuda .         # nvidia/cuda runtime + CUDA torch
#   docker run --rm -p 5006:5006 -v ppviz-data:/data ppviz:cpu    # http://localhost:5006/app
#
# The image installs ppviz from its wheel (built in the `wheel` stage from these sources: library,
# dashboard app and pages, shipped checkpoints), with constraints.txt (torch==2.13.0 and the other
# pins). The CPU variant takes torch from PyTorch's CPU wheel index; the CUDA variant from PyTorch's
# CUDA index named by TORCH_CUDA (the wheel brings its own CUDA libraries; the host needs only a
# recent NVIDIA driver and the NVIDIA container toolkit: docker run --gpus all ...).
#
# Build arguments for machines without Docker Hub or PyTorch's index (docker/build-offline.sh):
#   PYTHON_IMAGE     the CPU base (default python:3.11-slim); any Debian/Ubuntu image with
#                    `python` (>= 3.10) and its venv module
#   TORCH_INDEX_URL  where torch comes from (default: PyTorch's index for the variant); wheels put
#                    in docker/wheels/ are offered too (a local torch-2.13.0+cpu wheel wins over
#                    the same version from any index, being a higher version: 2.13.0+cpu > 2.13.0)

ARG VARIANT=cpu
ARG PYTHON_IMAGE=python:3.11-slim
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-runtime-ubuntu22.04

# ---------------------------------------------------------------------------------------------
# CPU base: Debian slim with CPython 3.11 (or PYTHON_IMAGE).
# (PYTHON_IMAGE is a build argument; its default above carries the tag.)
# hadolint ignore=DL3006
FROM ${PYTHON_IMAGE} AS base-cpu
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV TORCH_INDEX_URL=${TORCH_INDEX_URL}
RUN python -m venv /opt/venv

# ---------------------------------------------------------------------------------------------
# CUDA base: NVIDIA's runtime image (Ubuntu 22.04, CPython 3.10).
FROM ${CUDA_IMAGE} AS base-cuda
ARG TORCH_CUDA=cu128
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/${TORCH_CUDA}
ENV TORCH_INDEX_URL=${TORCH_INDEX_URL} \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
# Ubuntu's package versions move with security updates; the base image tag pins the release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv

# ---------------------------------------------------------------------------------------------
# The wheel: `pip wheel` of these sources. pyproject.toml maps app.py, pages/ and pretrained/ into
# the package (ppviz/dashboard/, ppviz/pretrained/), so the wheel alone is the whole application.
# (base-${VARIANT} names a stage of this file, not a registry image, hence no tag.)
# hadolint ignore=DL3006
FROM base-${VARIANT} AS wheel
WORKDIR /src
COPY pyproject.toml setup.py README.md constraints.txt app.py ./
COPY ppviz/ ppviz/
COPY pages/ pages/
COPY pretrained/ pretrained/
COPY assets/ assets/
RUN /opt/venv/bin/python -m pip wheel --no-cache-dir --no-deps -c constraints.txt -w /wheels .

# ---------------------------------------------------------------------------------------------
# The image: one of the bases above, chosen by VARIANT.
# (base-${VARIANT} names a stage of this file, not a registry image, hence no tag.)
# hadolint ignore=DL3006
FROM base-${VARIANT} AS runtime
ARG VARIANT
LABEL org.opencontainers.image.title="ppviz" \
      org.opencontainers.image.description="Pseudo-precipitation downscaling dashboard (${VARIANT})" \
      org.opencontainers.image.licenses="MIT"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PPVIZ_VARIANT=${VARIANT}

WORKDIR /opt/ppviz

# torch first (the big layer, cached while ppviz changes): from TORCH_INDEX_URL or docker/wheels/,
# pinned by constraints.txt. Then the ppviz wheel and its other dependencies from PyPI, same pins.
COPY constraints.txt ./
COPY docker/wheels/ /opt/wheels/
RUN pip install --find-links /opt/wheels --index-url "$TORCH_INDEX_URL" -c constraints.txt torch \
    && python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
COPY --from=wheel /wheels/ /opt/wheels/
# The wheel is the application: ppviz, ppviz/dashboard (app.py + pages), ppviz/pretrained.
RUN pip install --find-links /opt/wheels -c constraints.txt /opt/wheels/ppviz-*.whl \
    && rm -rf /opt/wheels \
    && python -c "import ppviz.checkpoints as c, ppviz.resources as r; assert r.INSTALLED and r.APP.is_file(); print([i.name for i in c.list_checkpoints()])"
COPY docker/entrypoint.sh /usr/local/bin/ppviz-entrypoint
RUN chmod 0755 /usr/local/bin/ppviz-entrypoint

# An unprivileged user owns only the data volume; the code stays root's and read-only to it.
RUN groupadd --system --gid 10001 ppviz \
    && useradd --system --uid 10001 --gid ppviz --no-log-init --create-home --home-dir /home/ppviz ppviz \
    && mkdir -p /data /opt/natural-earth \
    && chown ppviz:ppviz /data

# /data: cache of the synthetic default dataset, or prepared datasets (PPVIZ_DATA=/data/x.zarr).
# /opt/natural-earth: Natural Earth shapefiles in cartopy's layout, mounted read-only or baked
# into a derived image (docs/deploy.md); without them maps draw without coastlines.
ENV PPVIZ_DATA_DIR=/data \
    PPVIZ_NATURAL_EARTH=/opt/natural-earth \
    PPVIZ_ADDRESS=0.0.0.0 \
    PPVIZ_PORT=5006 \
    PPVIZ_NUM_PROCS=1 \
    HOME=/home/ppviz
VOLUME ["/data"]

USER 10001:10001
EXPOSE 5006

# One GET of /liveness on loopback, at the PPVIZ_PORT and PPVIZ_PREFIX ppviz serve uses
# (ppviz/serve_probe.py; tests/test_dockerfile.py runs this command against the entry script).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-m", "ppviz.serve_probe"]

ENTRYPOINT ["/usr/local/bin/ppviz-entrypoint"]
