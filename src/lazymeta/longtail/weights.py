"""Class-balanced weights from the effective number of samples (Cui et al. 2019).

A class seen n times covers the feature space like ``E_n = (1 - β^n) / (1 - β)`` distinct samples, not n:
new samples overlap old ones. Weighting the loss by ``1 / E_n`` balances classes by that coverage; β = 0
gives no re-weighting and β → 1 gives inverse class frequency.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def effective_number(counts: Tensor, beta: float) -> Tensor:
    """``E_n = (1 - β^n) / (1 - β)``; call it on float64 counts (for β near 1, ``1 - β^n`` loses float32 digits)."""
    return (1 - beta ** counts) / (1 - beta)


def class_balanced_weights(counts: Sequence[int] | Tensor, beta: float = 0.9999) -> Tensor:
    """``w_c ∝ 1 / E_{n_c}``, normalised so that ``Σ_c w_c = C`` (float32, one weight per class).

    Args:
        counts: training images per class, each at least 1.
        beta: the β of the effective number, in [0, 1).

    Example:
        >>> class_balanced_weights([100, 10], beta=0.0)
        tensor([1., 1.])

    References:
        Cui, Jia, Lin, Song, Belongie. Class-Balanced Loss Based on Effective Number of Samples. CVPR 2019.
    """
    counts = torch.as_tensor(counts, dtype=torch.float64)
    if counts.dim() != 1 or (counts < 1).any():
        raise ValueError(f"counts must be one positive count per class, got {counts.tolist()}")
    if not 0 <= beta < 1:
        raise ValueError(f"beta must be in [0, 1), got {beta}")
    inverse = 1 / effective_number(counts, beta)
    return (inverse * len(counts) / inverse.sum()).float()
