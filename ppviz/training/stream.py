"""Training crops read lazily from a dataset on disk, through a ``torch.utils.data`` pipeline.

The in-memory trainer (:func:`ppviz.training.diffusion_loop.train_diffusion`) needs the encoded
training span as one ``(T, H, W)`` array: 40 years of hourly 0.25 deg Europe do not fit. Here
each batch is read from the dataset (a canonical zarr/netCDF or an ARCO-ERA5-layout zarr, through
:class:`ppviz.data.windows.WindowReader`), one ``crop x crop`` window of one hour per sample,
and encoded to the training target (PP, or transformed tp) in the worker that read it. Peak memory
is a few zarr chunks and a few batches per worker, whatever the span.

Determinism. Sample ``k`` of the global batch of step ``s`` is drawn from
``numpy.random.default_rng([seed, s, k])`` (an hour among the training ones, then a block-aligned
corner), so a batch depends on nothing but the step: a resumed run reads exactly the batches an
uninterrupted one would, with any number of workers, and ``world`` data-parallel ranks split
each global batch into shards (rank ``r`` takes samples ``r, r + world, ...``). Held-out hours
never enter: only the indices in :attr:`CropSource.times` are drawn.
"""

from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from ppviz.data.grid import Grid, coarsen_blocks


class PPEncoder:
    """Fine tp and vimd (mm/h) -> PP with a PP model (:func:`ppviz.models.pp.encode_numpy`)."""

    def __init__(self, model: torch.nn.Module):
        self.model = model.cpu().eval()

    def __call__(self, tp: np.ndarray, vimd: np.ndarray) -> np.ndarray:
        from ppviz.models.pp import encode_numpy

        return encode_numpy(self.model, tp, vimd)


class TPZEncoder:
    """Fine tp (mm/h) -> the standardised log transform of :mod:`ppviz.tp_target` (vimd unused)."""

    def __init__(self, transform):
        self.transform = transform

    def __call__(self, tp: np.ndarray, vimd: np.ndarray) -> np.ndarray:
        return np.asarray(self.transform.forward(tp), dtype=np.float32)


@dataclass
class CropSource:
    """Where crops come from.

    Attributes
    ----------
    data : str or None
        Dataset path for :func:`ppviz.data.source.load_dataset` (None: the default dataset).
    times : array of int, shape (N,)
        Indices of the training hours in the dataset's ``time`` (held-out ones left out).
    grid : Grid
        The fine grid crops are drawn from: the dataset's, or a part of it (the block-aligned
        part of :func:`ppviz.data.regions.data_extent`, see ``origin``).
    static : array, shape (C, H, W), float32
        Static channels of ``grid`` (:func:`ppviz.diffusion.downscaler.static_channels`).
    encoder : callable
        ``encoder(tp, vimd) -> target``, arrays of any shape in mm/h -> float32 of that shape.
    origin : (int, int)
        Row and column of ``grid``'s south-west cell in the dataset (0, 0: the whole dataset);
        window indices of :func:`read_window` are relative to ``grid``.
    """

    data: str | None
    times: np.ndarray
    grid: Grid
    static: np.ndarray
    encoder: Callable[[np.ndarray, np.ndarray], np.ndarray]
    origin: tuple[int, int] = (0, 0)

    def __post_init__(self):
        self.times = np.asarray(self.times, dtype=np.int64)
        if self.times.size == 0:
            raise ValueError("no training hours to draw crops from")
        if self.static.shape[1:] != self.grid.shape:
            raise ValueError(f"static must be (C, {self.grid.nlat}, {self.grid.nlon}), got {self.static.shape}")


_OPEN: dict[tuple[int, str | None], object] = {}


def _reader(data):
    """The :class:`ppviz.data.windows.WindowReader` of ``data`` (None: the default dataset),
    opened once per process (DataLoader workers open their own)."""
    key = (os.getpid(), None if data is None else str(data))
    if key not in _OPEN:
        from ppviz.data.source import data_path, open_any
        from ppviz.data.windows import WindowReader

        path = data_path(data)  # None: the default; a registry name (era5-sample, ...) resolved
        _OPEN[key] = WindowReader(path, open_any(path))
    return _OPEN[key]


def read_window(source: CropSource, t: int, i0: int, j0: int, size_i: int, size_j: int) -> np.ndarray:
    """The encoded target of hour ``t`` (dataset index) on rows ``i0:i0+size_i``, columns
    ``j0:j0+size_j`` of ``source.grid``; float32 ``(size_i, size_j)``. Reads only the chunks
    under the window."""
    return source.encoder(*read_raw(source, t, i0, j0, size_i, size_j))


def read_raw(source: CropSource, t: int, i0: int, j0: int, size_i: int, size_j: int):
    """tp and vimd (mm/h) of that window; ValueError naming the hour if any is NaN or infinite."""
    reader = _reader(source.data)
    di, dj = source.origin
    tp, vimd = reader.read(int(t), di + i0, dj + j0, size_i, size_j)
    if not (np.isfinite(tp).all() and np.isfinite(vimd).all()):
        when = np.datetime_as_string(reader.view.time.values[int(t)], unit="h")
        raise ValueError(f"the training data have NaN or infinite tp/vimd at {when}; fill or drop those times first")
    return tp, vimd


def sample_fields(source: CropSource, n: int = 64, seed: int = 0) -> np.ndarray:
    """``min(n, N)`` whole training hours, encoded: float32 ``(n, H, W)`` (for ``sigma_data``)."""
    pick = np.sort(np.random.default_rng([seed, 1]).choice(source.times.size, min(n, source.times.size),
                                                           replace=False))
    g = source.grid
    return np.stack([read_window(source, source.times[k], 0, 0, g.nlat, g.nlon) for k in pick])


def check_crop(crop: int, grid, factor: int, multiple: int, *, where: str = "") -> None:
    """Refuse a training crop that does not fit ``grid`` (a :class:`ppviz.data.grid.Grid`).

    ``crop`` (fine cells) must be a multiple of the block ``factor`` and of the U-Net's
    ``multiple`` and at most the grid's smaller side. ``where`` says what the grid is (e.g. "the
    block-aligned part of the data's 41 x 41 cells"). ValueError names the sizes and the largest
    crop allowed."""
    step = math.lcm(factor, multiple)
    largest = min(grid.nlat, grid.nlon) // step * step
    what = f"the training grid {grid.nlat} x {grid.nlon}" + (f" ({where})" if where else "")
    if crop % step:
        raise ValueError(f"crop {crop} must be a multiple of the block factor {factor} and of {multiple} (U-Net); "
                         f"{what} allows {step}, {2 * step}, ... up to {largest}")
    if crop > grid.nlat or crop > grid.nlon:
        raise ValueError(f"crop {crop} does not fit {what}; the largest crop allowed is {largest}"
                         if largest else f"crop {crop} does not fit {what}: it holds no crop of {step} x {step}")


class CropStream(IterableDataset):
    """Batches ``(fine, coarse, static)`` of one rank, for steps ``start_step, start_step + 1, ...``.

    Parameters
    ----------
    source : CropSource
    crop : int
        Crop side in fine cells (a multiple of ``factor``).
    batch_size : int
        The global batch (all ranks together); this rank's share is samples ``rank::world``.
    factor : int
        Coarsening factor; crop corners lie on its block lattice.
    seed : int
    start_step : int
    rank, world : int
        Data-parallel rank and world size.

    Yields
    ------
    fine : tensor (b, crop, crop) ; coarse : (b, crop/f, crop/f) ; static : (b, C, crop, crop)
        float32, ``b = len(range(rank, batch_size, world))``. With several DataLoader workers,
        worker ``w`` of ``n`` makes steps ``start_step + w, + n, ...``; the loader's round-robin
        returns them in step order.
    """

    def __init__(self, source: CropSource, crop: int, batch_size: int, factor: int, seed: int, *,
                 start_step: int = 0, rank: int = 0, world: int = 1):
        check_crop(crop, source.grid, factor, 1)
        if not 0 <= rank < world or batch_size < world:
            raise ValueError(f"rank {rank} of world {world} cannot share a global batch of {batch_size}")
        self.source, self.crop, self.batch_size, self.factor, self.seed = source, crop, batch_size, factor, seed
        self.start_step, self.rank, self.world = start_step, rank, world

    def picks(self, step: int) -> list[tuple[int, int, int]]:
        """``(time index, row, column)`` of this rank's samples of ``step``."""
        g, c, f = self.source.grid, self.crop, self.factor
        out = []
        for k in range(self.rank, self.batch_size, self.world):
            rng = np.random.default_rng([self.seed, step, k])
            t = int(self.source.times[rng.integers(self.source.times.size)])
            out.append((t, f * int(rng.integers((g.nlat - c) // f + 1)), f * int(rng.integers((g.nlon - c) // f + 1))))
        return out

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """This rank's batch of ``step``."""
        c, lat, static = self.crop, self.source.grid.lat, self.source.static
        picks = self.picks(step)
        raw = [read_raw(self.source, t, i, j, c, c) for t, i, j in picks]
        fine = self.source.encoder(np.stack([r[0] for r in raw]), np.stack([r[1] for r in raw]))
        coarse = [coarsen_blocks(f, lat[i : i + c], self.factor) for f, (_, i, _) in zip(fine, picks)]
        stat = [static[:, i : i + c, j : j + c] for _, i, j in picks]
        return (torch.from_numpy(np.ascontiguousarray(fine, dtype=np.float32)),
                torch.from_numpy(np.stack(coarse).astype(np.float32)),
                torch.from_numpy(np.ascontiguousarray(np.stack(stat), dtype=np.float32)))

    def __iter__(self):
        info = get_worker_info()
        w, n = (0, 1) if info is None else (info.id, info.num_workers)
        for step in itertools.count(self.start_step + w, n):
            try:
                yield self.batch(step)
            except ValueError as exc:  # travels as a value: the loader would wrap it in a traceback
                yield _Failure(str(exc))
                return


class _Failure:
    def __init__(self, message: str):
        self.message = message


def _raise_failures(it):
    for item in it:
        if isinstance(item, _Failure):
            raise ValueError(item.message)
        yield item


def _identity(x):
    return x


def _worker_init(_):
    torch.set_num_threads(1)


def stream_batches(stream: CropStream, workers: int = 2, prefetch: int = 2) -> Iterator:
    """Iterate ``stream`` through a DataLoader with ``workers`` processes (0: in this process)."""
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    if workers == 0:
        return _raise_failures(iter(stream))
    loader = DataLoader(stream, batch_size=None, num_workers=workers, worker_init_fn=_worker_init,
                        prefetch_factor=prefetch, persistent_workers=False)
    return _raise_failures(iter(loader))


class Hours(Dataset):
    """Whole hours of a dataset, raw: item ``k`` is ``(tp, vimd)`` of hour ``times[k]``, float32
    ``(H, W)`` in mm/h (NaN kept). For the PP trainer's cell pools (:mod:`ppviz.training.pp`)."""

    def __init__(self, data, times):
        self.data, self.times = (None if data is None else str(data)), np.asarray(times, dtype=np.int64)

    def __len__(self) -> int:
        return self.times.size

    def __getitem__(self, k):
        reader = _reader(self.data)
        g = reader.view
        return reader.read(int(self.times[k]), 0, 0, g.sizes["lat"], g.sizes["lon"])


def read_hours(data, times, workers: int = 2) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(tp, vimd)`` of each of ``times`` in order, read by ``workers`` processes (0: here)."""
    hours = Hours(data, times)
    if workers == 0 or len(hours) < 2:
        return (hours[k] for k in range(len(hours)))
    loader = DataLoader(hours, batch_size=None, num_workers=min(workers, len(hours)), worker_init_fn=_worker_init,
                        collate_fn=_identity)
    return iter(loader)
