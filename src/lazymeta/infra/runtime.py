"""Process-wide set-up shared by every application (few-shot, long-tail, meta-attack): device and seeds."""
from __future__ import annotations

import os
import random

import numpy as np
import torch

from lazymeta.infra.errors import ConfigError


def pick_device(name: str) -> torch.device:
    """``auto`` is CUDA when present, else the CPU; an unusable device is a config error, not a crash later."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ConfigError(f"device: {name!r} is not a torch device ({e}); use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device: {name!r} asked for, but this torch sees no CUDA device; use device=auto or cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"device: {name!r} asked for, but only {torch.cuda.device_count()} CUDA devices exist")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def set_op_threads(threads: int | None) -> None:
    """torch's op threads for this process (None: leave torch's own choice, or OMP_NUM_THREADS)."""
    if threads is not None:
        torch.set_num_threads(threads)


def cpu_threads(threads: int | None, task_threads: int | None, tasks: int, device: torch.device) -> tuple[int, int]:
    """(op threads, task threads) of this process, for ``tasks`` tasks per meta-step.

    On a CPU a task's small convolutions gain little from a second op thread, and several op threads
    stall at their barriers for minutes when another process holds a core; independent tasks in threads
    of one op thread each do not. So unless ``threads`` (or OMP_NUM_THREADS) says otherwise, one op thread
    and as many task threads as this process's share of the cores allows. An explicit setting always wins.
    """
    if device.type != "cpu":
        return threads or torch.get_num_threads(), task_threads or 1
    op = threads or (torch.get_num_threads() if "OMP_NUM_THREADS" in os.environ else 1)
    cores = len(os.sched_getaffinity(0)) // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return op, task_threads or max(1, min(tasks, cores // op))
