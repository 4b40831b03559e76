# syntax=docker/dockerfile:1
# ppviz dashboard image, two variants from one file (see docs/deploy.md):
#
#   docker build -t ppviz:cpu .                                   # python:3.11-slim + CPU torch
#   docker build --build-arg VARIANT=cuda -t ppviz:cuda .         # nvidia/cuda runtime + CUDA torch
#   docker run --rm -p 5006:5006 -v ppviz-data:/data ppviz:cpu    # http://localhost:5006/app
#
# Both install with constraints.txt (torch==2.13.0 and the other pins). The CPU variant takes
# torch from PyTorch's CPU wheel index; the CUDA variant from PyTorch's CUDA index named by
# TORCH_CUDA (the wheel brings its own CUDA libraries; the host needs only a recent NVIDIA driver
# and the NVIDIA container toolkit: docker run --gpus all ...).

ARG VARIANT=cpu
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-runtime-ubuntu22.04

# ---------------------------------------------------------------------------------------------
# CPU base: Debian slim with CPython 3.11.
FROM python:3.11-slim AS base-cpu
ENV TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN python -m venv /opt/venv

# ---------------------------------------------------------------------------------------------
# CUDA base: NVIDIA's runtime image (Ubuntu 22.04, CPython 3.10).
FROM ${CUDA_IMAGE} AS base-cuda
ARG TORCH_CUDA=cu128
ENV TORCH_INDEX_URL=https://download.pytorch.org/whl/${TORCH_CUDA} \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
# Ubuntu's package versions move with security updates; the base image tag pins the release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv

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

# Dependencies first (cached while only the sources change). torch comes from PyTorch's index
# for this variant, pinned by constraints.txt; everything else from PyPI under the same pins.
COPY pyproject.toml README.md constraints.txt ./
RUN pip install --index-url "$TORCH_INDEX_URL" -c constraints.txt torch \
    && mkdir -p ppviz \
    && printf '__version__ = "0"\n' > ppviz/__init__.py \
    && pip install -c constraints.txt . \
    && pip uninstall -y ppviz \
    && rm -rf ppviz build ./*.egg-info

# The application: library, dashboard pages, entry script and the shipped checkpoints.
# ppviz serve runs app.py from this tree, so the package is installed in editable mode.
COPY ppviz/ ppviz/
COPY pages/ pages/
COPY pretrained/ pretrained/
COPY app.py ./
COPY docker/entrypoint.sh /usr/local/bin/ppviz-entrypoint
RUN pip install --no-deps -c constraints.txt -e . \
    && chmod -R a+rX /opt/ppviz \
    && chmod 0755 /usr/local/bin/ppviz-entrypoint

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

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; p = (os.environ.get('PPVIZ_PREFIX') or '').strip('/'); u.urlopen('http://127.0.0.1:%s%s/liveness' % (os.environ.get('PPVIZ_PORT') or '5006', '/' + p if p else ''), timeout=4)"]

ENTRYPOINT ["/usr/local/bin/ppviz-entrypoint"]
