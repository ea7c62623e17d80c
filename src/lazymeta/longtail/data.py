"""The data of a long-tail run: a long-tailed training set, a balanced validation set, the balanced test set.

``<name>-lt`` cuts the tail from the training split of any registered dataset (``cifar10-lt``,
``cifar100-lt``, ``mnist-lt``, ...); ``folder-lt`` reads ``train/<class>/<image>`` and
``test/<class>/<image>`` from a directory or a zip (e.g. the CIFAR-10 JPEGs of shared/data), so the method
runs on real images without the original archives; ``synthetic-lt`` is generated in memory (smoke runs
and tests that have no data files).
"""
from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from lazymeta.data import ImageClasses, ImageTransform, load_split
from lazymeta.data.longtail import long_tailed

SUFFIX = "-lt"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


@dataclass(frozen=True)
class LongTailData:
    train: ImageClasses
    val: ImageClasses | None
    test: ImageClasses

    def counts(self) -> list[int]:
        """Training images per class (what the class weights and the shot groups are computed from)."""
        return np.bincount(self.train.labels, minlength=self.train.num_classes).tolist()


def build(dataset: str, root: str | None, imbalance: float, head: int | None, holdout_per_class: int,
          profile: str = "exponential", seed: int = 0) -> LongTailData:
    """Load ``dataset`` (``<name>-lt``) and cut its long tail with :func:`lazymeta.data.longtail.long_tailed`.

    ``holdout_per_class=0, head=None`` is Cui et al.'s builder (no validation set); ``holdout_per_class=10``
    is the two-component-weighting code's (the head keeps n - 10 images, which changes the real ratio).
    """
    if not dataset.endswith(SUFFIX):
        raise ValueError(f"long-tail datasets are named <dataset>{SUFFIX} (cifar10-lt, cifar100-lt, mnist-lt, "
                         f"folder-lt, synthetic-lt), got {dataset!r}")
    base = dataset[:-len(SUFFIX)]
    if base == "folder":
        if root is None:
            raise ValueError("folder-lt needs --data-root: a directory or zip holding train/<class>/ and test/<class>/")
        full, test = (load_folder(root, split) for split in ("train", "test"))
    elif base == "synthetic":
        full, test = (synthetic(split) for split in ("train", "test"))
    else:
        full, test = (load_split(base, split, root) for split in ("train", "test"))
    train, val = long_tailed(full, imbalance, head, profile, seed, holdout_per_class)
    return LongTailData(train, val, test)


SYNTHETIC_CLASSES, SYNTHETIC_SIZE, SYNTHETIC_PER_CLASS = 10, 8, {"train": 110, "test": 10}


def synthetic(split: str) -> ImageClasses:
    """10 classes of 8x8 RGB images, each class a fixed random mean image plus Gaussian noise (seeded: the same
    arrays everywhere). The train split has 110 images per class, enough for an imbalance of 100 after a
    validation hold-out of 10; the test split 10."""
    rng = np.random.default_rng(0)
    means = rng.uniform(40, 215, (SYNTHETIC_CLASSES, 3, SYNTHETIC_SIZE, SYNTHETIC_SIZE))
    rng = np.random.default_rng(1 if split == "train" else 2)
    labels = np.repeat(np.arange(SYNTHETIC_CLASSES), SYNTHETIC_PER_CLASS[split])
    images = np.clip(means[labels] + rng.normal(0, 50, (len(labels), *means.shape[1:])), 0, 255).astype(np.uint8)
    return ImageClasses(images=images, labels=labels, classes=tuple(f"class{c}" for c in range(SYNTHETIC_CLASSES)),
                        transform=ImageTransform(size=SYNTHETIC_SIZE, channels=3))


def load_folder(root: str | Path, split: str) -> ImageClasses:
    """``<root>/[<prefix>/]<split>/<class>/<image>`` from a directory or a zip, classes in name order."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root} does not exist: expected a directory or zip of {split}/<class>/<image>")
    if zipfile.is_zipfile(root):
        with zipfile.ZipFile(root) as archive:
            members = _members(archive.namelist(), split, root)
            images = [_decode(archive.read(name)) for name, _ in members]
    else:
        names = [str(p.relative_to(root).as_posix()) for p in root.rglob("*") if p.is_file()]
        members = _members(names, split, root)
        images = [_decode((root / name).read_bytes()) for name, _ in members]
    classes = sorted({label for _, label in members})
    array = np.stack(images)
    channels = array.shape[1]
    return ImageClasses(images=array, labels=np.array([classes.index(c) for _, c in members], dtype=np.int64),
                        classes=tuple(classes), transform=ImageTransform(size=array.shape[-1], channels=channels))


def _members(names: list[str], split: str, root: Path) -> list[tuple[str, str]]:
    """(path, class) of every image under a ``<split>/<class>/`` folder, sorted."""
    found = []
    for name in names:
        path = PurePosixPath(name)
        if path.suffix.lower() in IMAGE_SUFFIXES and len(path.parts) >= 3 and path.parts[-3] == split:
            found.append((name, path.parts[-2]))
    if not found:
        raise FileNotFoundError(f"{root} holds no images under {split}/<class>/")
    return sorted(found)


def _decode(data: bytes) -> np.ndarray:
    """(C, H, W) uint8; grey images stay one channel."""
    image = Image.open(io.BytesIO(data))
    array = np.asarray(image.convert("L" if image.mode in ("1", "L") else "RGB"))
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
