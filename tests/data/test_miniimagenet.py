"""miniImageNet: the real image folder + Ravi CSVs (60 per class, shared/data), and the pickle cache format
generated in its exact layout, with hostile and broken variants."""
from __future__ import annotations

import csv
import io
import pickle

import numpy as np
import pytest
from format_writers import Hostile
from PIL import Image
from shared_data import require_shared

from lazymeta.data import load_split, miniimagenet
from lazymeta.data.download import DatasetError

COUNTS = {"train": 64, "val": 16, "test": 20}


@pytest.mark.data
@pytest.mark.parametrize("split", miniimagenet.SPLITS)
def test_real_folder_and_ravi_csv(miniimagenet_root, split):
    data = load_split("miniimagenet", split, root=miniimagenet_root)
    with open(require_shared(f"splits/miniimagenet/ravi/{split}.csv"), newline="") as f:
        ravi = sorted({row["label"] for row in csv.DictReader(f)})
    assert data.classes == tuple(ravi) and len(ravi) == COUNTS[split]
    assert data.images.shape == (COUNTS[split] * 60, 3, 84, 84) and np.bincount(data.labels).tolist() == \
        [60] * COUNTS[split]
    with open(miniimagenet_root / "miniimagenet" / f"{split}.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for i in (0, len(rows) // 2, len(rows) - 1):  # decoded pixels are the JPEG's, in CSV order
        image = Image.open(miniimagenet_root / "miniimagenet" / "images" / rows[i]["filename"])
        assert np.array_equal(data.images[i], np.asarray(image.convert("RGB")).transpose(2, 0, 1))
        assert data.classes[data.labels[i]] == rows[i]["label"]


@pytest.mark.data
def test_real_folder_resized_and_cached(miniimagenet_root):
    data = miniimagenet.load("val", miniimagenet_root, image_size=32)
    assert data.images.shape == (960, 3, 32, 32) and isinstance(data.images, np.memmap)
    assert (miniimagenet_root / "miniimagenet" / "cache" / "val_84px.npy").exists()


def _write_cache(path, images, class_dict, protocol=4):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps({"image_data": images, "class_dict": class_dict}, protocol=protocol))


def _classes(count, per_class):
    return {f"n{c:08d}": list(range(c * per_class, (c + 1) * per_class)) for c in range(count)}


@pytest.mark.parametrize("size", [84, 50])
def test_pickle_cache_format(tmp_path, size):
    images = np.random.default_rng(0).integers(0, 256, (16 * 3, size, size, 3), dtype=np.uint8)
    class_dict = dict(reversed(_classes(16, 3).items()))  # order in the file does not matter
    _write_cache(tmp_path / "miniimagenet" / "mini-imagenet-cache-val.pkl", images, class_dict, protocol=2)
    data = load_split("miniimagenet", "val", root=tmp_path)
    assert data.images.shape == (48, 3, 84, 84) and data.classes == tuple(sorted(class_dict))
    assert data.labels.tolist() == np.repeat(np.arange(16), 3).tolist()
    if size == 84:
        assert np.array_equal(data.images, images.transpose(0, 3, 1, 2))


def test_code_executing_cache_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    _write_cache(tmp_path / "miniimagenet" / "mini-imagenet-cache-test.pkl", Hostile(marker), {})
    with pytest.raises(DatasetError, match="mini-imagenet-cache-test.pkl refers to (posix|os).system"):
        load_split("miniimagenet", "test", root=tmp_path)
    assert not marker.exists()


def test_broken_caches_are_named(tmp_path):
    path = tmp_path / "miniimagenet" / "mini-imagenet-cache-val.pkl"
    _write_cache(path, np.zeros((48, 84, 84, 3), np.uint8), _classes(15, 3))
    with pytest.raises(DatasetError, match=r"holds 15 classes \(3 images without one\), expected the 16"):
        load_split("miniimagenet", "val", root=tmp_path)
    _write_cache(path, np.zeros((48, 84, 84, 3), np.uint8), {**_classes(16, 3), "n00000000": [47, 48]})
    with pytest.raises(DatasetError, match="class n00000000 lists indices outside the 48 images"):
        load_split("miniimagenet", "val", root=tmp_path)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DatasetError, match="mini-imagenet-cache-val.pkl is truncated"):
        load_split("miniimagenet", "val", root=tmp_path)


def test_folder_problems_are_named(tmp_path):
    folder = tmp_path / "miniimagenet"
    (folder / "images").mkdir(parents=True)
    rows = [(f"n{c:08d}{i:08d}.jpg", f"n{c:08d}") for c in range(20) for i in range(2)]
    (folder / "test.csv").write_text("filename,label\n" + "".join(f"{name},{label}\n" for name, label in rows))
    with pytest.raises(DatasetError, match=r"40 images listed in .*test.csv are not in"):
        load_split("miniimagenet", "test", root=tmp_path)
    for name, _ in rows:
        buffer = io.BytesIO()
        Image.new("RGB", (100, 80), "red").save(buffer, format="JPEG")
        (folder / "images" / name).write_bytes(buffer.getvalue())
    (folder / "images" / rows[5][0]).write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(DatasetError, match=f"{rows[5][0]} is not a readable image"):
        load_split("miniimagenet", "test", root=tmp_path)
    (folder / "images" / rows[5][0]).write_bytes((folder / "images" / rows[0][0]).read_bytes())
    data = load_split("miniimagenet", "test", root=tmp_path)  # 100x80 images are resized to 84x84
    assert data.images.shape == (40, 3, 84, 84) and data.images[:, 0].mean() > 240


def test_missing_data_says_what_to_put_where(tmp_path):
    with pytest.raises(DatasetError) as error:
        load_split("miniimagenet", "train", root=tmp_path, download=True)
    message = str(error.value)
    assert "cannot be downloaded automatically" in message
    assert str(tmp_path / "miniimagenet" / "mini-imagenet-cache-train.pkl") in message
    assert str(tmp_path / "miniimagenet" / "train.csv") in message and "filename,label" in message
