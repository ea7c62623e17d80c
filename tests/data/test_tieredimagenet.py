"""tieredImageNet on generated files in the few-shot-ssl release format (no real images exist here), with
the real Ren et al. classes and categories from the shared split files."""
from __future__ import annotations

import csv
import io
import pickle

import numpy as np
import pytest
from format_writers import Hostile, python2_pickle
from PIL import Image
from shared_data import require_shared

from lazymeta.data import load_split, tieredimagenet
from lazymeta.data.download import DatasetError


def _png(value: int, size: int = 84) -> np.ndarray:
    """What cv2.imencode returned: the PNG bytes as a uint8 vector."""
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (value, 255 - value, 7)).save(buffer, format="PNG")
    return np.frombuffer(buffer.getvalue(), np.uint8)


def _write(directory, split: str, per_class: int = 2, images=None, labels_pickle=pickle.dumps) -> list[tuple]:
    """Writes <split>_images_png.pkl and <split>_labels.pkl; image i of class c has red value c % 256."""
    with open(require_shared(f"splits/tieredimagenet/ren/{split}.csv"), newline="") as f:
        pairs = [tuple(row) for row in csv.reader(f)]
    categories = sorted({category for _, category in pairs})
    specific = np.repeat(np.arange(len(pairs)), per_class)
    general = np.array([categories.index(pairs[c][1]) for c in specific])
    directory.mkdir(parents=True, exist_ok=True)
    images_name, labels_name = tieredimagenet.file_names(split)
    encoded = [_png(int(c) % 256) for c in specific] if images is None else images
    (directory / images_name).write_bytes(pickle.dumps(encoded, protocol=2))
    (directory / labels_name).write_bytes(labels_pickle(
        {"label_specific": specific, "label_general": general, "label_specific_str": [s for s, _ in pairs],
         "label_general_str": categories}))
    return pairs


@pytest.mark.data
@pytest.mark.parametrize("split, classes, groups", [("val", 97, 6), ("test", 160, 8)])
def test_release_format(tmp_path, split, classes, groups):
    pairs = _write(tmp_path / "tieredimagenet", split, labels_pickle=python2_pickle)
    data = load_split("tieredimagenet", split, root=tmp_path)
    assert data.num_classes == classes and len(set(data.groups)) == groups
    assert list(zip(data.classes, data.groups)) == pairs
    assert data.images.shape == (2 * classes, 3, 84, 84) and isinstance(data.images, np.memmap)
    assert np.array_equal(data.images[:, 0, 0, 0], data.labels % 256) and (data.images[:, 2] == 7).all()


@pytest.mark.data
def test_images_as_bytes_resized(tmp_path):
    with open(require_shared("splits/tieredimagenet/ren/val.csv"), newline="") as f:
        count = sum(1 for _ in f)
    _write(tmp_path / "tieredimagenet", "val", 1, images=[_png(9, 90).tobytes()] * count)
    data = tieredimagenet.load("val", tmp_path, image_size=21)
    assert data.images.shape == (count, 3, 21, 21) and (data.images[:, 0] == 9).all()


@pytest.mark.data
def test_broken_files_are_named(tmp_path):
    directory = tmp_path / "tieredimagenet"
    _write(directory, "val", 1, images=[_png(1)] * 96)
    with pytest.raises(DatasetError, match="val_images_png.pkl holds 96 images, expected a list of 97"):
        load_split("tieredimagenet", "val", root=tmp_path)
    _write(directory, "val", 1, images=[_png(1)] * 96 + [np.frombuffer(b"\x89PNG broken", np.uint8)])
    with pytest.raises(DatasetError, match="val_images_png.pkl image 96 is not a readable image"):
        load_split("tieredimagenet", "val", root=tmp_path)
    _write(directory, "test", 1, labels_pickle=lambda d: pickle.dumps({**d, "label_general_str": ["a"]}))
    with pytest.raises(DatasetError, match="test_labels.pkl: 160 classes in 1 categories"):
        load_split("tieredimagenet", "test", root=tmp_path)


def test_code_executing_labels_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    directory = tmp_path / "tieredimagenet"
    directory.mkdir()
    for name in tieredimagenet.file_names("train"):
        (directory / name).write_bytes(pickle.dumps([Hostile(marker)]))
    with pytest.raises(DatasetError, match="train_labels.pkl refers to (posix|os).system"):
        load_split("tieredimagenet", "train", root=tmp_path)
    assert not marker.exists()


def test_missing_files_say_what_to_put_where(tmp_path):
    with pytest.raises(DatasetError) as error:
        load_split("tieredimagenet", "test", root=tmp_path, download=True)
    message = str(error.value)
    assert "test_images_png.pkl" in message and "test_labels.pkl" in message
    assert str(tmp_path / "tieredimagenet") in message and "cannot be downloaded" in message
