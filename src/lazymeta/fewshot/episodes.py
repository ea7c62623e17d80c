"""N-way K-shot episodes: D_tr (support), D_val and a query set, each a pure function of (seed, key).

Episode ``key`` is drawn with ``numpy.random.default_rng([seed, *key])``, so any episode can be
rebuilt in any order, on any rank, after any restart.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from lazymeta.data.base import ImageClasses

LABEL_ORDERS = ("shuffled", "global")


class Episode(NamedTuple):
    support_x: Tensor
    support_y: Tensor
    val_x: Tensor
    val_y: Tensor
    query_x: Tensor
    query_y: Tensor
    classes: np.ndarray  # the (rotated) class ids behind labels 0..N-1


class EpisodeSampler:
    """Samples N-way episodes from one split.

    Args:
        data: the split's images.
        ways, shots: N classes, K support examples per class (D_tr).
        val_shots: examples per class in D_val (the teacher's and the outer loss's data; the
            paper uses 1 during meta-training).
        queries: examples per class in the query set (evaluation).
        rotations: multiples of 90 degrees; each rotation of a class is a class of its own
            (the standard Omniglot augmentation is ``(0, 90, 180, 270)``).
        label_order: ``shuffled`` (labels permuted per task, the i.i.d. default) or ``global`` (the
            non-i.i.d. mode of the paper: labels follow the global class order, so label j is always
            the task's j-th class in dataset order).
        seed: the stream's seed.
    """

    def __init__(self, data: ImageClasses, ways: int, shots: int, val_shots: int = 1, queries: int = 15,
                 rotations: Sequence[int] = (0,), label_order: str = "shuffled", seed: int = 0, name: str = "data"):
        if label_order not in LABEL_ORDERS:
            raise ValueError(f"label_order must be one of {LABEL_ORDERS}, got {label_order!r}")
        if any(r % 90 for r in rotations) or len(set(rotations)) != len(rotations) or not rotations:
            raise ValueError(f"rotations must be distinct multiples of 90 degrees, got {list(rotations)}")
        if min(ways, shots) < 1 or min(val_shots, queries) < 0:
            raise ValueError(f"need ways >= 1, shots >= 1, val_shots >= 0, queries >= 0; got {ways}, {shots}, "
                             f"{val_shots}, {queries}")
        self.data, self.ways, self.shots = data, ways, shots
        self.val_shots, self.queries, self.seed = val_shots, queries, seed
        self.rotations = tuple(r // 90 % 4 for r in rotations)
        self.label_order = label_order
        self.by_class = data.indices_by_class()
        self.num_classes = data.num_classes * len(self.rotations)
        if ways > self.num_classes:
            raise ValueError(f"{name} has {self.num_classes} classes ({data.num_classes} x {len(self.rotations)} "
                             f"rotations), fewer than ways={ways}; lower --ways or pick a larger split")
        per_task = shots + val_shots + queries
        smallest = min(len(i) for i in self.by_class)
        if per_task > smallest:
            raise ValueError(f"{name} has classes with only {smallest} images, but an episode needs "
                             f"shots + val_shots + queries = {shots} + {val_shots} + {queries} = {per_task} per class")

    def episode(self, *key: int) -> Episode:
        rng = np.random.default_rng([self.seed, *key])
        classes = rng.choice(self.num_classes, self.ways, replace=False)
        if self.label_order == "global":
            classes = np.sort(classes)
        splits = np.cumsum([self.shots, self.val_shots])
        parts: list[list[np.ndarray]] = [[], [], []]
        for cls in classes:
            base, rotation = divmod(int(cls), len(self.rotations))
            chosen = rng.choice(self.by_class[base], self.shots + self.val_shots + self.queries, replace=False)
            images = np.rot90(self.data.images[chosen], self.rotations[rotation], axes=(2, 3))
            for part, block in zip(parts, np.split(images, splits)):
                part.append(block)
        tensors = []
        for part, per_class in zip(parts, (self.shots, self.val_shots, self.queries)):
            tensors.append(self.data.transform.to_tensor(np.concatenate(part)))
            tensors.append(torch.arange(self.ways).repeat_interleave(per_class))
        return Episode(*tensors, classes=classes)
