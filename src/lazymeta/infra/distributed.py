"""Meta-batches split over processes launched by ``torchrun`` (gloo on CPU, nccl on GPU).

Rank r runs tasks r, r + W, r + 2W, ... of every meta-batch; :meth:`MetaLearner.meta_step` all-reduces
their sums, so every rank takes the same outer step. Rank 0 alone writes the run directory.
"""
from __future__ import annotations

import os
from typing import NamedTuple

import torch
import torch.distributed as dist


class World(NamedTuple):
    rank: int
    size: int

    @property
    def main(self) -> bool:
        return self.rank == 0


def join() -> World:
    """Join the process group that torchrun describes in the environment (a 1-process world otherwise)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World(0, 1)
    if not dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if cuda else "gloo")
    return World(dist.get_rank(), dist.get_world_size())


def my_share(world: World, size: int) -> range:
    """Indices of the meta-batch's tasks that this rank runs."""
    return range(world.rank, size, world.size)
