"""MNIST (LeCun et al. 1998) from its original gzipped IDX files: 60,000 training and 10,000 test digits.

Used by the meta-attack experiments. The four files are checked (md5 as torchvision publishes, IDX
magic numbers and sizes) and decoded once into an array cache.
"""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from lazymeta.data.base import ImageClasses, ImageTransform
from lazymeta.data.download import DatasetError, Remote, ensure_files
from lazymeta.data.formats import ImageAllocator, cached_split, read_idx, resolve_size

SPLITS = ("train", "test")
NATIVE_SIZE = 28
CLASSES = tuple(str(digit) for digit in range(10))
SOURCE = "https://ossci-datasets.s3.amazonaws.com/mnist/"

REMOTES = {
    "train": (Remote("train-images-idx3-ubyte.gz", (SOURCE + "train-images-idx3-ubyte.gz",),
                     md5="f68b3c2dcbeaaa9fbdd348bbdeb94873"),
              Remote("train-labels-idx1-ubyte.gz", (SOURCE + "train-labels-idx1-ubyte.gz",),
                     md5="d53e105ee54ea40749a09fcbcd1e9432")),
    "test": (Remote("t10k-images-idx3-ubyte.gz", (SOURCE + "t10k-images-idx3-ubyte.gz",),
                    md5="9fb629c4189551a2d022fa330f9573f3"),
             Remote("t10k-labels-idx1-ubyte.gz", (SOURCE + "t10k-labels-idx1-ubyte.gz",),
                    md5="ec29112dd5afa0611ce80d1b7f02629c")),
}
_COUNTS = {"train": 60000, "test": 10000}
_VERSION = 1


def load(split: str, root: str | os.PathLike, download: bool = False,
         image_size: int | None = None) -> ImageClasses:
    """One split as (N, 1, S, S) uint8 digits (ink high, as in the files); ``image_size`` defaults to 28."""
    if split not in SPLITS:
        raise ValueError(f"MNIST has no split {split!r}; choose one of {list(SPLITS)}")
    return _load(split, Path(root) / "mnist", download, image_size, verify=True)


def prepare(root: str | os.PathLike, download: bool = False, verify: bool = True) -> None:
    """Decode both splits into the cache. ``verify=False`` skips the md5 of the compressed files, for copies
    re-gzipped elsewhere (same content, other bytes); the IDX headers and sizes are checked all the same."""
    for split in SPLITS:
        _load(split, Path(root) / "mnist", download, None, verify)


def _load(split: str, directory: Path, download: bool, size: int | None, verify: bool) -> ImageClasses:
    remotes = [remote if verify else replace(remote, md5=None) for remote in REMOTES[split]]

    def build(allocate: ImageAllocator) -> dict[str, np.ndarray]:
        images_path, labels_path = ensure_files(remotes, directory, download)
        images, labels = read_idx(images_path, 3), read_idx(labels_path, 1)
        count = _COUNTS[split]
        if images.shape != (count, NATIVE_SIZE, NATIVE_SIZE) or labels.shape != (count,) or labels.max() > 9:
            raise DatasetError(f"{images_path} and {labels_path} hold images {images.shape} and labels "
                               f"{labels.shape} (max {labels.max()}), expected ({count}, 28, 28) and ({count},) "
                               f"digits; are these the official MNIST {split} files?")
        allocate((count, 1, NATIVE_SIZE, NATIVE_SIZE))[:, 0] = images
        return {"labels": labels.astype(np.int64)}

    size = resolve_size(size, NATIVE_SIZE)
    originals = [directory / remote.filename for remote in remotes]
    arrays = cached_split(directory, split, NATIVE_SIZE, size, _VERSION, originals, build)
    return ImageClasses(images=arrays["images"], labels=arrays["labels"], classes=CLASSES,
                        transform=ImageTransform(size=size, channels=1))
