"""Process-wide set-up shared by every application (few-shot, long-tail, meta-attack): device, seeds,
threads and how freed memory goes back to the operating system."""
from __future__ import annotations

import ctypes
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


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_MAX = 32 << 20   # glibc's ceiling for M_MMAP_THRESHOLD on 64-bit
_TRIM_THRESHOLD = 1 << 30


def keep_freed_memory() -> bool:
    """Let glibc keep freed blocks of up to 32 MB for reuse instead of handing them back to the system.

    A student step allocates and frees the same few activation buffers, each of up to a few MB, k times over.
    Above glibc's default thresholds every such buffer is a fresh mapping whose pages fault in on first
    touch, which on small CPU workloads costs as much as the arithmetic (benchmarks/student_loop.py). The
    price is that the process keeps its peak heap instead of shrinking after it. Does nothing (and returns
    False) without glibc, or when the user set any ``MALLOC_*`` variable, which glibc then obeys.
    """
    if any(k.startswith("MALLOC_") for k in os.environ):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own symbols: glibc's, where there is glibc
    except (OSError, AttributeError, TypeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
