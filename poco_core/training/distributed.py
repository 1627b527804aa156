"""Multi-process training under torchrun: process group set-up and the DDP wrapper.

Each rank samples its own batches (seeded by rank), DistributedDataParallel averages the
gradients, and rank 0 alone writes checkpoints. DDP is built with
``find_unused_parameters=True``: a rank's batch touches only the per-session embeddings of
the sessions it drew, so some parameters get no gradient on some ranks in some steps; DDP
then still all-reduces them (as zeros from the ranks that did not use them), keeping every
rank's weights identical. The extra graph traversal this costs is small next to the model.
Every rank validates on the same data with the same weights, so all reach the same "best"
decision without extra messages; cancellation is agreed by an all-reduce each step.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as torch_dist
from torch import nn

from poco_core.base.device import resolve_device
from poco_core.base.events import CancelLike, is_cancelled


@dataclass
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @classmethod
    def from_env(cls, device: str = "auto") -> "DistContext":
        """Join the process group torchrun describes in the environment (nccl on CUDA, gloo otherwise)."""
        dev = resolve_device(device)
        backend = "nccl" if dev.type == "cuda" else "gloo"
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        if dev.type == "cuda":
            dev = torch.device("cuda", local_rank)
            torch.cuda.set_device(dev)
        if not torch_dist.is_initialized():
            torch_dist.init_process_group(backend)
        return cls(torch_dist.get_rank(), torch_dist.get_world_size(), local_rank, dev)

    def __enter__(self) -> "DistContext":
        return self

    def __exit__(self, *exc: Any) -> None:
        if torch_dist.is_initialized():
            torch_dist.destroy_process_group()

    def wrap(self, module: nn.Module) -> nn.Module:
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=ids, find_unused_parameters=True)

    def any_cancelled(self, token: CancelLike | None) -> bool:
        flag = torch.tensor([1.0 if is_cancelled(token) else 0.0], device=self.device)
        torch_dist.all_reduce(flag, op=torch_dist.ReduceOp.MAX)
        return bool(flag.item())

    def loop_kwargs(self, cancel: CancelLike | None) -> dict[str, Any]:
        """What `poco_core.training.loop.Loop` needs to run as one rank of this group."""
        return {"rank": self.rank, "world_size": self.world_size, "wrap": self.wrap,
                "is_cancelled": lambda: self.any_cancelled(cancel)}
