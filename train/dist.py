"""Distributed data parallel plumbing: one process per device under ``torchrun``, nothing otherwise.

``torchrun --nproc_per_node N $(which pawlens-train) ...`` sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``;
:func:`init_distributed` then joins the process group (NCCL on GPUs, gloo on CPUs).  Without those
variables everything here is a no-op, so the same code runs in one process.

Usage::

    ctx = init_distributed("cpu")
    loss_sum, n = all_reduce_sum([loss_sum, n], ctx)
    if ctx.is_main: save(...)
    cleanup(ctx)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    owns_group: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_world_size() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def init_distributed(device_type: str) -> DistContext:
    """Join the process group that ``torchrun`` describes in the environment (or return a single-process context)."""
    import torch
    import torch.distributed as dist

    world = env_world_size()
    if world <= 1:
        return DistContext()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    backend = "nccl" if device_type == "cuda" else "gloo"
    owns = False
    if not dist.is_initialized():
        if device_type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend, init_method="env://")
        owns = True
    return DistContext(rank=rank, world_size=world, local_rank=local_rank, backend=dist.get_backend(), owns_group=owns)


def all_reduce_sum(values: list[float], ctx: DistContext, device: Any = "cpu") -> list[float]:
    """Sum a list of numbers over all ranks (identity in one process)."""
    if not ctx.enabled:
        return [float(v) for v in values]
    import torch
    import torch.distributed as dist

    dev = device if ctx.backend == "nccl" else "cpu"
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=dev)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return [float(v) for v in t.cpu().tolist()]


def broadcast_object(obj: Any, ctx: DistContext) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not ctx.enabled:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        import torch.distributed as dist

        dist.barrier()


def cleanup(ctx: DistContext) -> None:
    if ctx.enabled and ctx.owns_group:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
