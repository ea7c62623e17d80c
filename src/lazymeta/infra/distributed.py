"""Meta-batches split over processes launched by ``torchrun`` (gloo on CPU, nccl on GPU).

Rank r runs tasks r, r + W, r + 2W, ... of every meta-batch; :meth:`MetaLearner.meta_step` all-reduces
their sums, so every rank takes the same outer step. Rank 0 alone writes the run directory.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

import torch
import torch.distributed as dist


class World(NamedTuple):
    rank: int
    size: int

    @property
    def main(self) -> bool:
        return self.rank == 0


def launched() -> World:
    """The world torchrun describes in the environment, without joining it (a 1-process world otherwise)."""
    return World(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")))


def join() -> World:
    """Join the process group that torchrun describes in the environment (a 1-process world otherwise)."""
    if launched().size == 1:
        return World(0, 1)
    if not dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if cuda else "gloo")
    return World(dist.get_rank(), dist.get_world_size())


@contextmanager
def joined() -> Iterator[World]:
    """:func:`join` for the block; a group the block created is left when the block ends normally.

    Leaving matters on exit: gloo's worker thread can still hold the last reference to a reduced tensor
    after ``all_reduce`` returned, and if it drops it while the interpreter shuts down, the thread dies
    waiting for the GIL and the whole process aborts ("terminate called without an active exception").
    """
    created = launched().size > 1 and not dist.is_initialized()
    world = join()
    yield world
    if created:
        dist.barrier()
        dist.destroy_process_group()  # joins gloo's threads (MetaLearner still holds its last reduced tensor)


def my_share(world: World, size: int) -> range:
    """Indices of the meta-batch's tasks that this rank runs."""
    return range(world.rank, size, world.size)
