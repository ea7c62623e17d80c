"""CIFAR-100: 100 classes in 20 superclasses, 50,000 train and 10,000 test images (see :mod:`lazymeta.data.cifar`)."""
from __future__ import annotations

import os

from lazymeta.data import cifar
from lazymeta.data.base import ImageClasses

SPLITS = tuple(cifar.CIFAR100.members)
SOURCE = cifar.CIFAR100.archive.urls[0]


def load(split: str, root: str | os.PathLike, download: bool = False,
         image_size: int | None = None) -> ImageClasses:
    return cifar.load(cifar.CIFAR100, split, root, download, image_size)
