"""Long-tailed versions of a balanced dataset, for the long-tail experiments (CIFAR-LT-10/100).

Cui et al. (2019) keep n_i = int(n_max * (1/imbalance)^(i/(C-1))) images of class i, so the imbalance
factor is the ratio of the largest to the smallest class. The two-component-weighting code (Jamal et al.
2020, Longtail_DA) first holds out a few images per class as a balanced validation ("meta") set and builds
the tail from the rest, so its head class has n - holdout images (490 for CIFAR-100).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from lazymeta.data.base import ImageClasses

PROFILES = ("exponential", "step")


def tail_counts(num_classes: int, n_max: int, imbalance: float, profile: str = "exponential") -> list[int]:
    """Images kept of class i = 0..C-1 (class 0 is the head).

    ``exponential``: Cui et al.'s profile; ``step``: the first half of the classes keep ``n_max``, the rest
    ``n_max / imbalance`` (Cao et al. 2019).
    """
    if imbalance < 1:
        raise ValueError(f"imbalance is largest / smallest class size, at least 1; got {imbalance}")
    if profile == "exponential":
        return [int(n_max * (1 / imbalance) ** (i / max(num_classes - 1, 1))) for i in range(num_classes)]
    if profile == "step":
        return [n_max if i < num_classes // 2 else int(n_max / imbalance) for i in range(num_classes)]
    raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")


def long_tailed(data: ImageClasses, imbalance: float, head: int | None = None, profile: str = "exponential",
                seed: int = 0, holdout_per_class: int = 0) -> tuple[ImageClasses, ImageClasses | None]:
    """(long-tailed training set, balanced validation set or None) drawn from ``data``.

    ``holdout_per_class`` images of each class (random, by ``seed``) form the validation set first; the
    tail then keeps a random ``tail_counts(...)[i]`` of the remaining images of class i, with ``n_max`` =
    ``head``, else the smallest class's remaining size. Both sets keep ``data``'s order and classes.
    """
    rng = np.random.default_rng(seed)
    by_class = [rng.permutation(rows) for rows in data.indices_by_class()]
    smallest = min(len(rows) for rows in by_class)
    if not 0 <= holdout_per_class < smallest:
        raise ValueError(f"holdout_per_class={holdout_per_class} must be below the smallest class size {smallest}")
    rest = [rows[holdout_per_class:] for rows in by_class]
    counts = tail_counts(data.num_classes, smallest - holdout_per_class if head is None else head, imbalance, profile)
    short = [c for c, (rows, count) in enumerate(zip(rest, counts)) if count > len(rows)]
    if short:
        c = short[0]
        raise ValueError(f"class {data.classes[c]!r} has {len(rest[c])} images left, fewer than the {counts[c]} "
                         f"its place in the tail needs; lower head (now {counts[0]})")
    train = _subset(data, np.concatenate([rows[:count] for rows, count in zip(rest, counts)]))
    held = _subset(data, np.concatenate([rows[:holdout_per_class] for rows in by_class])) if holdout_per_class else None
    return train, held


def _subset(data: ImageClasses, rows: np.ndarray) -> ImageClasses:
    rows = np.sort(rows)
    return replace(data, images=data.images[rows], labels=data.labels[rows])
