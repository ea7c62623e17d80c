"""Datasets: each module decodes its originals once into an :class:`ImageClasses` array cache."""
from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING

from lazymeta.infra.lazy import lazy_exports

if TYPE_CHECKING:
    from lazymeta.data.base import ImageClasses

# name -> module; every module defines ``SPLITS`` and
# ``load(split, root, download=False, image_size=None) -> ImageClasses``.
# The four CIFAR modules are thin views of lazymeta.data.cifar; `lazymeta data list` shows them all.
DATASETS = {
    "glyphs": "lazymeta.data.glyphs",
    "omniglot": "lazymeta.data.omniglot",
    "miniimagenet": "lazymeta.data.miniimagenet",
    "tieredimagenet": "lazymeta.data.tieredimagenet",
    "cifar-fs": "lazymeta.data.cifar_fs",
    "fc100": "lazymeta.data.fc100",
    "cifar10": "lazymeta.data.cifar10",
    "cifar100": "lazymeta.data.cifar100",
    "mnist": "lazymeta.data.mnist",
}


def dataset_module(name: str):
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    return importlib.import_module(DATASETS[name])


def load_split(name: str, split: str, root: str | os.PathLike | None = None, download: bool = False,
               image_size: int | None = None) -> ImageClasses:
    """Load one split of a dataset by name (root: argument, else $LAZYMETA_DATA, else the user cache)."""
    from lazymeta.data.base import data_root

    module = dataset_module(name)
    if split not in module.SPLITS:
        raise ValueError(f"dataset {name!r} has no split {split!r}; choose one of {list(module.SPLITS)}")
    return module.load(split, data_root(root), download=download, image_size=image_size)


_EXPORTS = {name: "lazymeta.data.base" for name in ("ImageClasses", "ImageTransform", "data_root")}
__all__ = ["DATASETS", "dataset_module", "load_split", *_EXPORTS]
__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
