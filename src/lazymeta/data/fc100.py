"""FC100 (Oreshkin et al. 2018): the 20 CIFAR-100 superclasses split 12/4/4 (see :mod:`lazymeta.data.cifar`)."""
from __future__ import annotations

import os

from lazymeta.data import cifar
from lazymeta.data.base import ImageClasses

SPLITS = tuple(cifar.FC100)
SOURCE = cifar.CIFAR100.archive.urls[0]


def load(split: str, root: str | os.PathLike, download: bool = False,
         image_size: int | None = None) -> ImageClasses:
    return cifar.load_few_shot("fc100", split, root, download, image_size)
