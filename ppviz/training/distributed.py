"""Data-parallel training under ``torchrun``: the process group, the one writer, loss averages.

``torchrun --nproc-per-node N -m ppviz train diffusion ...`` (and multi-node through torchrun's
``--nnodes``/``--rdzv-*`` flags) starts N processes with ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK`` set; :func:`init_from_env` joins them into one process group (NCCL on CUDA, gloo
on the CPU). Each rank trains on its own shard of every global batch
(:class:`ppviz.training.stream.CropStream`), DistributedDataParallel averages the gradients, and
rank 0 alone writes logs, states and checkpoints. A plain ``python -m ppviz`` run is world 1.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    """This process's place in the run: ``rank`` of ``world``, the device it trains on."""

    rank: int = 0
    world: int = 1
    device: torch.device | None = None

    @property
    def writer(self) -> bool:
        """Whether this process writes files (rank 0)."""
        return self.rank == 0

    def mean(self, x: torch.Tensor) -> float:
        """Mean of the scalar ``x`` over all ranks."""
        if self.world == 1:
            return float(x)
        t = x.detach().float().reshape(1).clone()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return float(t) / self.world

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is true on any rank (every rank must call this at the same step)."""
        if self.world == 1:
            return bool(flag)
        return self.mean(torch.tensor(float(bool(flag)))) > 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        """``module`` in DistributedDataParallel (world > 1), else itself."""
        if self.world == 1:
            return module
        from torch.nn.parallel import DistributedDataParallel

        if self.device is not None and self.device.type == "cuda":
            return DistributedDataParallel(module, device_ids=[self.device.index])
        return DistributedDataParallel(module)


def init_from_env() -> Dist:
    """Join the torchrun process group when ``WORLD_SIZE`` > 1 (NCCL on CUDA, else gloo)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local % torch.cuda.device_count())
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return Dist(rank=rank, world=world, device=device)


def shutdown(d: Dist, ok: bool = True) -> None:
    """Leave the process group: after a last barrier when ``ok``; at once after an error (the
    other ranks may never reach a barrier; torchrun stops them when this one exits)."""
    if d.world > 1 and dist.is_initialized():
        if ok:
            dist.barrier()
        dist.destroy_process_group()
