"""Omniglot on the real data: the official archive layout is rebuilt from shared/data by ``omniglot_root``."""
from __future__ import annotations

import csv
import hashlib
import io
import shutil
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from shared_data import require_shared

from lazymeta.data import download, load_split, omniglot
from lazymeta.data.base import ImageTransform
from lazymeta.data.download import DatasetError, Remote

COUNTS = {"background": 964, "evaluation": 659, "train": 1028, "val": 172, "test": 423, "trainval": 1200}


def _index_rows() -> list[dict]:
    with open(require_shared("omniglot/omniglot_index.csv"), newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.data
@pytest.mark.parametrize("split", omniglot.SPLITS)
def test_split_sizes_and_layout(omniglot_root, split):
    data = load_split("omniglot", split, root=omniglot_root)
    assert data.num_classes == COUNTS[split]
    assert data.images.shape == (COUNTS[split] * 20, 1, 28, 28) and data.images.dtype == np.uint8
    assert np.bincount(data.labels).tolist() == [20] * COUNTS[split]
    assert data.groups == tuple(name.split("/")[0] for name in data.classes)
    assert data.transform == ImageTransform(size=28, channels=1, invert=True)


@pytest.mark.data
def test_splits_partition_the_characters(omniglot_root):
    classes = {split: load_split("omniglot", split, root=omniglot_root).classes for split in omniglot.SPLITS}
    assert classes["trainval"] == classes["train"] + classes["val"]
    vinyals = classes["train"] + classes["val"] + classes["test"]
    assert len(set(vinyals)) == 1623 and set(vinyals) == set(classes["background"] + classes["evaluation"])
    assert {name.split("/")[0] for name in classes["background"]}.isdisjoint(
        name.split("/")[0] for name in classes["evaluation"])


@pytest.mark.data
def test_ink_is_high_and_the_minority(omniglot_root):
    images = load_split("omniglot", "background", root=omniglot_root).images
    ink_fraction = (images > 127).mean()
    assert 0.02 < ink_fraction < 0.25
    assert np.median(images[:, 0, 0, :]) == 0  # the top row is paper


@pytest.mark.data
@pytest.mark.parametrize("set_name", ["background", "evaluation"])
def test_full_resolution_is_pixel_identical_to_the_source(omniglot_root, set_name):
    data = omniglot.load(set_name, omniglot_root, image_size=105)
    with np.load(require_shared(f"omniglot/images_{set_name}.npz")) as source:
        paper = source["images"]  # (characters, drawers, 105, 105), True = paper, in character-id order
    assert data.images.shape == (paper.shape[0] * 20, 1, 105, 105)
    assert np.array_equal(data.images[:, 0] == 255, ~paper.reshape(-1, 105, 105))
    assert np.array_equal(data.images[:, 0] == 0, paper.reshape(-1, 105, 105))  # and nothing but 0 and 255
    rows = [row for row in _index_rows() if row["set"] == set_name]
    assert data.classes == tuple(f"{row['alphabet']}/{row['character']}" for row in rows)


@pytest.mark.data
def test_stored_images_match_image_transform(omniglot_root):
    """What training sees equals what ImageTransform makes of the original PNG for a user."""
    data = omniglot.load("background", omniglot_root)
    with zipfile.ZipFile(omniglot_root / "omniglot" / "images_background.zip") as archive:
        members = [name for name in archive.namelist() if name.endswith(".png")][::997]
        for member in members:
            char_id, drawer = map(int, Path(member).stem.split("_"))
            image = Image.open(io.BytesIO(archive.read(member)))
            expected = (data.transform(image) * 255).round().to(torch.uint8)
            assert data.images[(char_id - 1) * 20 + drawer - 1].tolist() == expected.tolist(), member


@pytest.mark.data
@pytest.mark.parametrize("split", ["train", "val", "test", "trainval"])
def test_vinyals_table_reproduces_the_split_files(split):
    lines = require_shared(f"splits/omniglot/vinyals/{split}.txt").read_text().split()
    rotations = ("rot000", "rot090", "rot180", "rot270")
    assert lines == [f"{name}/{rot}" for name in omniglot.vinyals_classes(split) for rot in rotations]


@pytest.mark.data
def test_vinyals_table_matches_the_index():
    expected = {f"{row['alphabet']}/{row['character']}": row["vinyals_split"] for row in _index_rows()}
    embedded = {name: split for split in ("train", "val", "test") for name in omniglot.vinyals_classes(split)}
    assert embedded == expected


@pytest.mark.data
def test_caches_are_reused(omniglot_root, monkeypatch):
    first = omniglot.load("val", omniglot_root)

    def fail(*args):
        raise AssertionError("decoded again instead of reading the cache")

    monkeypatch.setattr(omniglot, "_decode_archive", fail)
    monkeypatch.setattr(download, "_digest", fail)  # archives are not even re-hashed
    start = time.perf_counter()
    second = omniglot.load("val", omniglot_root)
    assert time.perf_counter() - start < 1.0
    np.testing.assert_array_equal(first.images, second.images)
    assert first.classes == second.classes
    # a new size is made from the 105 px cache, not from the archives
    assert omniglot.load("val", omniglot_root, image_size=14).images.shape == (172 * 20, 1, 14, 14)
    assert (omniglot_root / "omniglot" / "omniglot_14px.npz").exists()


@pytest.mark.data
def test_cache_outlives_archives_and_notices_a_replaced_one(omniglot_root, tmp_path):
    for name in ("omniglot_105px.npz", "omniglot_28px.npz"):
        shutil.copy2(omniglot_root / "omniglot" / name, _mkdir(tmp_path / "omniglot") / name)
    assert omniglot.load("test", tmp_path).num_classes == 423  # archives deleted after decoding: fine
    archive = tmp_path / "omniglot" / "images_background.zip"
    archive.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DatasetError) as error:
        omniglot.load("test", tmp_path)
    message = str(error.value)
    assert str(archive) in message and omniglot.REMOTES["background"].md5 in message
    assert hashlib.md5(archive.read_bytes()).hexdigest() in message


@pytest.mark.data
def test_download_fetches_both_archives(omniglot_root, tmp_path, monkeypatch):
    for set_name, remote in omniglot.REMOTES.items():
        source = omniglot_root / "omniglot" / remote.filename
        md5 = hashlib.md5(source.read_bytes()).hexdigest()
        monkeypatch.setitem(omniglot.REMOTES, set_name, Remote(remote.filename, (source.as_uri(),), md5=md5))
    data = omniglot.load("evaluation", tmp_path, download=True, image_size=105)
    assert data.num_classes == 659
    assert sorted(p.name for p in (tmp_path / "omniglot").iterdir() if p.suffix == ".zip") == \
        ["images_background.zip", "images_evaluation.zip"]


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_missing_archives_say_what_to_put_where(tmp_path):
    with pytest.raises(DatasetError) as error:
        omniglot.load("train", tmp_path)
    message = str(error.value)
    for remote in omniglot.REMOTES.values():
        assert remote.filename in message and remote.md5 in message and remote.urls[0] in message
    assert str(tmp_path / "omniglot") in message and "download=True" in message


def test_unverified_archives_are_still_checked(tmp_path):
    directory = _mkdir(tmp_path / "omniglot")
    (directory / "images_background.zip").write_bytes(b"not a zip at all")
    (directory / "images_evaluation.zip").write_bytes(b"not a zip at all")
    with pytest.raises(DatasetError, match="images_background.zip is not a valid zip archive"):
        omniglot.prepare(tmp_path, verify=False)
    png = io.BytesIO()
    Image.new("1", (105, 105), 1).save(png, format="PNG")
    with zipfile.ZipFile(directory / "images_background.zip", "w") as archive:
        archive.writestr("images_background/Latin/character01/0001_01.png", png.getvalue())
    with pytest.raises(DatasetError, match="holds 1 characters and 1 images.*expected 964 characters x 20"):
        omniglot.prepare(tmp_path, verify=False)


def test_unknown_split_and_size():
    with pytest.raises(ValueError, match="no split 'training'"):
        omniglot.load("training", "/nonexistent")
    with pytest.raises(ValueError, match="image_size must be positive"):
        omniglot.load("train", "/nonexistent", image_size=0)
