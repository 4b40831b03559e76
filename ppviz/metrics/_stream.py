"""Streaming plumbing shared by the accumulators: exact sums, batch layout, the base class.

Private; :mod:`ppviz.metrics.accumulate` documents the protocol and re-exports
:class:`ExactSum` and :class:`Accumulator`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import xarray as xr

from ppviz.metrics._common import TIME, as_ensemble, as_field
from ppviz.metrics.ensemble import time_keys


class ExactSum:
    """Float64 sums independent of the order of the additions: a double-double (hi, lo) pair.

    Each addition is Knuth's error-free TwoSum (``hi + x = s + e`` exactly), the errors are
    collected in ``lo``; :attr:`value` is ``hi + lo`` rounded once.  Inputs must be finite.
    """

    __slots__ = ("hi", "lo")

    def __init__(self, shape=()):
        self.hi = np.zeros(shape, dtype=np.float64)
        self.lo = np.zeros(shape, dtype=np.float64)

    def add(self, x) -> None:
        """Add ``x`` (shape of the sum) elementwise."""
        x = np.asarray(x, dtype=np.float64)
        s = self.hi + x
        bp = s - self.hi
        self.lo = self.lo + ((self.hi - (s - bp)) + (x - bp))
        self.hi = s

    def add_steps(self, xs) -> None:
        """Add ``xs[0], xs[1], ...`` (time steps on axis 0) one by one."""
        for x in np.asarray(xs, dtype=np.float64):
            self.add(x)

    def merge(self, other: "ExactSum") -> None:
        self.add(other.hi)
        self.lo = self.lo + other.lo

    @property
    def value(self) -> np.ndarray:
        return self.hi + self.lo


@dataclass(frozen=True)
class _Grid:
    ydim: str
    xdim: str
    y: np.ndarray
    x: np.ndarray

    def same(self, other: "_Grid") -> bool:
        return (self.ydim, self.xdim) == (other.ydim, other.xdim) and np.array_equal(self.y, other.y) \
            and np.array_equal(self.x, other.x)

    def coords(self) -> dict:
        return {self.ydim: self.y, self.xdim: self.x}


@dataclass
class _Batch:
    values: np.ndarray  # (T, K, Y, X) float64, K = members (1 for a plain field)
    ensemble: bool
    grid: _Grid
    keys: np.ndarray | None  # time keys (see ensemble.time_keys)
    members: np.ndarray | None = None  # member coordinate (or 0, 1, ...) of an ensemble

    @property
    def member_last(self) -> np.ndarray:  # (T, Y, X, K), contiguous
        return np.ascontiguousarray(self.values.transpose(0, 2, 3, 1))


def _batch(da, member_dim: str) -> _Batch:
    if not isinstance(da, xr.DataArray):
        a = np.asarray(da)
        da = as_ensemble(a, member_dim) if a.ndim == 4 else as_field(a)
    if TIME not in da.dims:
        da = da.expand_dims(TIME)
    spatial = [d for d in da.dims if d not in (TIME, member_dim)]
    if len(spatial) != 2:
        raise ValueError(f"expected dims (time, lat, lon) plus optionally {member_dim!r}; got {da.dims}")
    ydim, xdim = spatial
    ens = member_dim in da.dims
    order = (TIME, member_dim, ydim, xdim) if ens else (TIME, ydim, xdim)
    v = np.asarray(da.transpose(*order).values, dtype=np.float64)
    if not ens:
        v = v[:, None]
    grid = _Grid(ydim, xdim, *(np.asarray(da[d].values) if d in da.coords else np.arange(da.sizes[d])
                               for d in (ydim, xdim)))
    members = None
    if ens:
        members = np.asarray(da[member_dim].values) if member_dim in da.coords else np.arange(da.sizes[member_dim])
    return _Batch(np.ascontiguousarray(v), ens, grid, time_keys(da), members)


def _valid(valid, shape: tuple[int, int, int]) -> np.ndarray:
    """(T, Y, X) bool mask from ``valid`` (None = all)."""
    if valid is None:
        return np.ones(shape, dtype=bool)
    if isinstance(valid, xr.DataArray):
        if TIME not in valid.dims:
            valid = valid.expand_dims(TIME)
        valid = valid.transpose(TIME, ...).values
    v = np.asarray(valid, dtype=bool)
    if v.shape != shape:
        raise ValueError(f"valid has shape {v.shape}, expected (time, lat, lon) = {shape}")
    return v


class Accumulator:
    """Base of the accumulators: configuration, grid bookkeeping, merge checks, ``empty()``."""

    def __init__(self, **config):
        self.config = dict(config)
        self.grid: _Grid | None = None
        self.n_steps = 0

    def empty(self):
        """A fresh accumulator with the same configuration."""
        return type(self)(**self.config)

    def _use_grid(self, grid: _Grid) -> None:
        if self.grid is None:
            self.grid = grid
        elif not self.grid.same(grid):
            raise ValueError("batch grid differs from the grid accumulated so far")

    def merge(self, other):
        """Add ``other``'s chunks to this accumulator (in place; returns self)."""
        if type(other) is not type(self) or other.config != self.config:
            raise ValueError(f"cannot merge {type(other).__name__}({other.config}) into "
                             f"{type(self).__name__}({self.config})")
        if other.n_steps == 0:
            return self
        if self.n_steps == 0:
            self.__dict__.update(_copy_state(other.__dict__))
            return self
        self._use_grid(other.grid)
        self._merge_state(other)
        self.n_steps += other.n_steps
        return self

    def _merge_state(self, other) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _gridded(self, data: np.ndarray, name: str, attrs: dict, lead: dict | None = None) -> xr.DataArray:
        lead = lead or {}
        dims = tuple(lead) + (self.grid.ydim, self.grid.xdim)
        return xr.DataArray(data, dims=dims, coords={**lead, **self.grid.coords()}, name=name, attrs=attrs)


def _copy_state(state: dict) -> dict:
    return copy.deepcopy(state)
