"""Process-wide set-up shared by every application (few-shot, long-tail, meta-attack): device and seeds."""
from __future__ import annotations

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
