"""tieredImageNet (Ren et al. 2018): 608 ImageNet classes, 84x84, split by 34 high-level categories into
351/97/160 classes (20/6/8 categories).

Read from its commonly distributed form (the few-shot-ssl release), which the user provides in
``root/tieredimagenet``: ``<split>_images_png.pkl`` (a list of PNG-encoded images, as bytes or the uint8
arrays of ``cv2.imencode``) and ``<split>_labels.pkl`` (a dict with ``label_specific``,
``label_general``, ``label_specific_str`` and ``label_general_str``). Both are read with the restricted
unpickler and decoded once into a memory-mapped (N, 3, 84, 84) cache (16 GB for all 779,165 images).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from lazymeta.data.base import ImageClasses, ImageTransform
from lazymeta.data.download import DatasetError
from lazymeta.data.formats import (
    ImageAllocator,
    cached_split,
    decode_image,
    entry,
    load_pickle,
    resolve_size,
)

SPLITS = ("train", "val", "test")
NATIVE_SIZE = 84
NUM_CLASSES = {"train": 351, "val": 97, "test": 160}
NUM_GROUPS = {"train": 20, "val": 6, "test": 8}
SOURCE = "user-provided"
_VERSION = 1


def file_names(split: str) -> tuple[str, str]:
    return f"{split}_images_png.pkl", f"{split}_labels.pkl"


def load(split: str, root: str | os.PathLike, download: bool = False,
         image_size: int | None = None) -> ImageClasses:
    """One split as (N, 3, S, S) uint8; classes are wnids, groups their high-level categories.

    ``download`` cannot fetch anything: the error says which files to put where.
    """
    if split not in SPLITS:
        raise ValueError(f"tieredImageNet has no split {split!r}; choose one of {list(SPLITS)}")
    size = resolve_size(image_size, NATIVE_SIZE)
    directory = Path(root) / "tieredimagenet"
    paths = [directory / name for name in file_names(split)]

    def build(allocate: ImageAllocator) -> dict[str, np.ndarray]:
        if not all(path.exists() for path in paths):
            raise DatasetError(missing_message(directory, split))
        return _decode(*paths, split, allocate)

    arrays = cached_split(directory, split, NATIVE_SIZE, size, _VERSION, paths, build)
    return ImageClasses(images=arrays["images"], labels=arrays["labels"], classes=tuple(arrays["classes"].tolist()),
                        transform=ImageTransform(size=size, channels=3), groups=tuple(arrays["groups"].tolist()))


def missing_message(directory: Path, split: str) -> str:
    images, labels = file_names(split)
    return (f"tieredImageNet {split} is not in {directory}, and cannot be downloaded automatically (its copies sit "
            f"behind Google Drive quotas). Put {images} (a pickled list of PNG-encoded images) and {labels} "
            f"(label_specific, label_general, label_specific_str, label_general_str) from the few-shot-ssl "
            f"release (Ren et al. 2018) in {directory}/")


def _decode(images_path: Path, labels_path: Path, split: str, allocate: ImageAllocator) -> dict[str, np.ndarray]:
    content = load_pickle(labels_path)
    specific = np.asarray(entry(content, "label_specific", labels_path))
    general = np.asarray(entry(content, "label_general", labels_path))
    classes = [str(name) for name in entry(content, "label_specific_str", labels_path)]
    categories = [str(name) for name in entry(content, "label_general_str", labels_path)]
    if not (specific.ndim == 1 and specific.shape == general.shape and len(classes) == NUM_CLASSES[split]
            and len(categories) == NUM_GROUPS[split] and np.isin(specific, np.arange(len(classes))).all()
            and np.isin(general, np.arange(len(categories))).all()):
        raise DatasetError(f"{labels_path}: {len(classes)} classes in {len(categories)} categories for labels "
                           f"{specific.shape} and {general.shape}, expected Ren et al.'s {NUM_CLASSES[split]} "
                           f"classes in {NUM_GROUPS[split]} categories")
    category_of = np.full(len(classes), -1)
    category_of[specific] = general
    if (category_of < 0).any() or not np.array_equal(category_of[specific], general):
        raise DatasetError(f"{labels_path}: some class has no image or images in two categories; the file is corrupt")
    encoded = load_pickle(images_path)
    if not isinstance(encoded, list) or len(encoded) != len(specific):
        raise DatasetError(f"{images_path} holds {len(encoded) if isinstance(encoded, list) else type(encoded)} "
                           f"images, expected a list of {len(specific)} (the labels in {labels_path.name})")
    out = allocate((len(encoded), 3, NATIVE_SIZE, NATIVE_SIZE))
    for row, data in enumerate(encoded):
        out[row] = decode_image(data, NATIVE_SIZE, f"{images_path} image {row}")
    return {"labels": specific.astype(np.int64), "classes": np.array(classes),
            "groups": np.array(categories)[category_of]}
