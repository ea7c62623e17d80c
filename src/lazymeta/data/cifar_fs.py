"""CIFAR-FS (Bertinetto et al. 2019): CIFAR-100 classes split 64/16/20 (see :mod:`lazymeta.data.cifar`)."""
from __future__ import annotations

import os

from lazymeta.data import cifar
from lazymeta.data.base import ImageClasses

SPLITS = tuple(cifar.CIFAR_FS)
SOURCE = cifar.CIFAR100.archive.urls[0]


def load(split: str, root: str | os.PathLike, download: bool = False,
         image_size: int | None = None) -> ImageClasses:
    return cifar.load_few_shot("cifar_fs", split, root, download, image_size)
