"""CIFAR-10: 10 classes, 50,000 train and 10,000 test images, 32x32 (see :mod:`lazymeta.data.cifar`)."""
from __future__ import annotations

import os

from lazymeta.data import cifar
from lazymeta.data.base import ImageClasses

SPLITS = tuple(cifar.CIFAR10.members)
SOURCE = cifar.CIFAR10.archive.urls[0]


def load(split: str, root: str | os.PathLike, download: bool = False,
         image_size: int | None = None) -> ImageClasses:
    return cifar.load(cifar.CIFAR10, split, root, download, image_size)
