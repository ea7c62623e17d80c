"""miniImageNet with the Ravi & Larochelle split: 64/16/20 classes of 600 ImageNet images, 84x84 RGB.

There is no official download (the usual copies sit behind Google Drive quotas), so the user provides
one of its two common forms, per split, in ``root/miniimagenet``:

- the pickle cache ``mini-imagenet-cache-<split>.pkl``: a dict with ``image_data`` uint8 (N, 84, 84, 3)
  and ``class_dict`` {wnid: [image indices]}, read with the restricted unpickler;
- the image folder ``images/<filename>.jpg`` with Ravi's ``<split>.csv`` (``filename,label``).

Either is decoded once into a memory-mapped (N, 3, 84, 84) cache (1.27 GB for all 60,000 images).
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
from PIL import Image

from lazymeta.data.base import ImageClasses, ImageTransform
from lazymeta.data.download import DatasetError
from lazymeta.data.formats import (
    ImageAllocator,
    cached_split,
    decode_image,
    entry,
    load_pickle,
    resolve_size,
    to_chw,
)

SPLITS = ("train", "val", "test")
NATIVE_SIZE = 84
NUM_CLASSES = {"train": 64, "val": 16, "test": 20}
SOURCE = "user-provided"
_VERSION = 1


def pickle_name(split: str) -> str:
    return f"mini-imagenet-cache-{split}.pkl"


def load(split: str, root: str | os.PathLike, download: bool = False,
         image_size: int | None = None) -> ImageClasses:
    """One split as (N, 3, S, S) uint8, classes (wnids) sorted; ``image_size`` defaults to 84.

    ``download`` cannot fetch anything: the error says which files to put where.
    """
    if split not in SPLITS:
        raise ValueError(f"miniImageNet has no split {split!r}; choose one of {list(SPLITS)}")
    size = resolve_size(image_size, NATIVE_SIZE)
    directory = Path(root) / "miniimagenet"
    pickled, table = directory / pickle_name(split), directory / f"{split}.csv"

    def build(allocate: ImageAllocator) -> dict[str, np.ndarray]:
        if pickled.exists():
            return _from_pickle(pickled, split, allocate)
        if table.exists():
            return _from_folder(table, directory / "images", split, allocate)
        raise DatasetError(missing_message(directory, split))

    arrays = cached_split(directory, split, NATIVE_SIZE, size, _VERSION, [pickled, table], build)
    return ImageClasses(images=arrays["images"], labels=arrays["labels"], classes=tuple(arrays["classes"].tolist()),
                        transform=ImageTransform(size=size, channels=3))


def missing_message(directory: Path, split: str) -> str:
    return (f"miniImageNet {split} is not in {directory}, and cannot be downloaded automatically (its copies sit "
            f"behind Google Drive quotas). Put either\n"
            f"  {directory / pickle_name(split)} (the widely shared pickle cache: a dict with 'image_data' "
            f"uint8 (N, 84, 84, 3) and 'class_dict' {{wnid: [indices]}}), or\n"
            f"  {directory / f'{split}.csv'} (Ravi & Larochelle split, columns filename,label) with the images "
            f"in {directory / 'images'}/<filename>.jpg")


def _from_pickle(path: Path, split: str, allocate: ImageAllocator) -> dict[str, np.ndarray]:
    content = load_pickle(path)
    images, class_dict = entry(content, "image_data", path), entry(content, "class_dict", path)
    if not (isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim == 4
            and images.shape[-1] == 3 and isinstance(class_dict, dict)):
        raise DatasetError(f"{path}: 'image_data' is {getattr(images, 'shape', type(images).__name__)}, expected "
                           "uint8 (N, H, W, 3), and 'class_dict' must be a dict; is this a miniImageNet cache?")
    classes = sorted(class_dict)
    labels = np.full(len(images), -1, np.int64)
    for label, wnid in enumerate(classes):
        indices = np.asarray(class_dict[wnid], np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= len(images) or (labels[indices] >= 0).any()):
            raise DatasetError(f"{path}: class {wnid} lists indices outside the {len(images)} images or of "
                               "another class; the file is corrupt")
        labels[indices] = label
    _check(path, split, classes, labels)
    out = allocate((len(images), 3, NATIVE_SIZE, NATIVE_SIZE))
    for row, image in enumerate(images):
        out[row] = image.transpose(2, 0, 1) if image.shape[:2] == (NATIVE_SIZE, NATIVE_SIZE) else \
            to_chw(Image.fromarray(image), NATIVE_SIZE)
    return {"labels": labels, "classes": np.array(classes)}


def _from_folder(table: Path, folder: Path, split: str, allocate: ImageAllocator) -> dict[str, np.ndarray]:
    with open(table, newline="") as f:
        reader = csv.DictReader(f)
        if not {"filename", "label"} <= set(reader.fieldnames or ()):
            raise DatasetError(f"{table} has columns {reader.fieldnames}, expected filename,label (Ravi's CSV)")
        rows = [(row["filename"], row["label"]) for row in reader if row["filename"]]
    classes = sorted({label for _, label in rows})
    position = {wnid: i for i, wnid in enumerate(classes)}
    labels = np.array([position[label] for _, label in rows], np.int64)
    _check(table, split, classes, labels)
    missing = [name for name, _ in rows if not (folder / name).is_file()]
    if missing:
        raise DatasetError(f"{len(missing)} images listed in {table} are not in {folder}/ (e.g. {missing[0]}); "
                           "put the miniImageNet images there")
    out = allocate((len(rows), 3, NATIVE_SIZE, NATIVE_SIZE))
    for row, (name, _) in enumerate(rows):
        out[row] = decode_image((folder / name).read_bytes(), NATIVE_SIZE, str(folder / name))
    return {"labels": labels, "classes": np.array(classes)}


def _check(path: Path, split: str, classes: list[str], labels: np.ndarray) -> None:
    if len(classes) != NUM_CLASSES[split] or (labels < 0).any():
        raise DatasetError(f"{path} holds {len(classes)} classes ({int((labels < 0).sum())} images without one), "
                           f"expected the {NUM_CLASSES[split]} classes of Ravi & Larochelle's {split} split")
