"""Datasets: each module decodes its originals once into an :class:`ImageClasses` array cache."""
from __future__ import annotations

import importlib
import os

from lazymeta.data.base import ImageClasses, ImageTransform, data_root

# name -> module; every module defines ``SPLITS`` and
# ``load(split, root, download=False, image_size=None) -> ImageClasses``.
DATASETS = {
    "glyphs": "lazymeta.data.glyphs",
    "omniglot": "lazymeta.data.omniglot",
}


def dataset_module(name: str):
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    return importlib.import_module(DATASETS[name])


def load_split(name: str, split: str, root: str | os.PathLike | None = None, download: bool = False,
               image_size: int | None = None) -> ImageClasses:
    """Load one split of a dataset by name (root: argument, else $LAZYMETA_DATA, else the user cache)."""
    module = dataset_module(name)
    if split not in module.SPLITS:
        raise ValueError(f"dataset {name!r} has no split {split!r}; choose one of {list(module.SPLITS)}")
    return module.load(split, data_root(root), download=download, image_size=image_size)


__all__ = ["DATASETS", "ImageClasses", "ImageTransform", "data_root", "dataset_module", "load_split"]
