"""The embedded glyphs dataset: deterministic renders, block-disjoint splits, a cache that round-trips."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from lazymeta.data import ImageTransform, glyphs, load_split


@pytest.fixture(scope="session")
def root(glyphs_root: Path) -> Path:
    return glyphs_root


@pytest.fixture(scope="session")
def cache(root: Path) -> dict[str, np.ndarray]:
    with np.load(root / "glyphs" / f"glyphs_28_v{glyphs.VERSION}.npz") as arrays:
        return dict(arrays)


@pytest.fixture(scope="session")
def splits(root: Path) -> dict:
    return {split: load_split("glyphs", split, root=root) for split in glyphs.SPLITS}


def test_render_is_deterministic_and_is_what_the_cache_holds(cache):
    # Characters from several blocks; the full generation is too slow to run twice.
    names = list(cache["classes"])
    rows = np.linspace(0, len(names) - 1, 12).astype(int)
    code_points = [int(names[row].split()[0][2:], 16) for row in rows]
    first, second = glyphs.render(code_points), glyphs.render(code_points)
    assert first.dtype == np.uint8 and first.shape == (12, glyphs.INSTANCES, 28, 28)
    np.testing.assert_array_equal(first, second)
    stored = cache["images"].reshape(len(names), glyphs.INSTANCES, 28, 28)[rows]
    np.testing.assert_array_equal(first, stored)


def test_render_at_another_size():
    assert glyphs.render([ord("A"), ord("ж")], image_size=16).shape == (2, glyphs.INSTANCES, 16, 16)


def test_splits_are_disjoint_by_class_and_block_and_cover_all_classes(cache, splits):
    assert len(cache["classes"]) >= 2000
    assert len(set(cache["classes"])) == len(cache["classes"])
    for a in glyphs.SPLITS:
        for b in glyphs.SPLITS:
            if a != b:
                assert not set(splits[a].classes) & set(splits[b].classes)
                assert not set(splits[a].groups) & set(splits[b].groups)
    assert sorted(c for data in splits.values() for c in data.classes) == sorted(cache["classes"])
    for split, data in splits.items():
        assert data.num_classes >= 20, f"{split} cannot make 20-way episodes"
        assert abs(data.num_classes / len(cache["classes"]) - glyphs.SPLIT_FRACTIONS[split]) < 0.05


def test_groups_are_the_unicode_blocks_of_the_classes(splits):
    for data in splits.values():
        assert len(data.groups) == data.num_classes
        for name, group in zip(data.classes, data.groups):
            code_point = int(name.split()[0][2:], 16)
            assert name == f"U+{code_point:04X} {chr(code_point)}"
            assert group == glyphs.block_of(code_point)


def test_every_class_has_varied_visible_instances(splits):
    for data in splits.values():
        assert data.images.dtype == np.uint8 and data.images.shape[1:] == (1, 28, 28)
        assert data.labels.min() == 0 and data.labels.max() == data.num_classes - 1
        assert (np.bincount(data.labels) == glyphs.INSTANCES).all()
        assert (data.images.max(axis=(1, 2, 3)) >= 200).all(), "an instance without ink"
        assert data.images.mean() < 100, "ink should be the minority, on paper 0"
        by_class = data.images[np.argsort(data.labels, kind="stable")].reshape(
            data.num_classes, glyphs.INSTANCES, -1)
        assert (by_class != by_class[:, :1]).any(axis=2).any(axis=1).all(), "a class of identical instances"
        assert data.transform == ImageTransform(size=28, channels=1, invert=True)


def test_loading_from_the_cache_gives_the_generated_arrays(root, splits):
    # The fixture's train split came straight from generation; this one is read from the file.
    again = load_split("glyphs", "train", root=root)
    np.testing.assert_array_equal(again.images, splits["train"].images)
    np.testing.assert_array_equal(again.labels, splits["train"].labels)
    assert (again.classes, again.groups) == (splits["train"].classes, splits["train"].groups)
    assert [p.name for p in (root / "glyphs").iterdir()] == [f"glyphs_28_v{glyphs.VERSION}.npz"]


def test_changed_fonts_regenerate_the_cache(root, cache, tmp_path, monkeypatch):
    (tmp_path / "glyphs").mkdir()
    name = f"glyphs_28_v{glyphs.VERSION}.npz"
    shutil.copy(root / "glyphs" / name, tmp_path / "glyphs" / name)
    monkeypatch.setattr(glyphs, "generate", lambda image_size: pytest.fail("regenerated a valid cache"))
    load_split("glyphs", "val", root=tmp_path)

    calls = []
    monkeypatch.setattr(glyphs, "fingerprint", lambda: "other fonts")
    monkeypatch.setattr(glyphs, "generate", lambda image_size: calls.append(image_size) or dict(cache))
    assert load_split("glyphs", "val", root=tmp_path).num_classes > 0
    assert calls == [28]


def test_unknown_split_is_rejected(root):
    with pytest.raises(ValueError, match="no split 'validation'"):
        load_split("glyphs", "validation", root=root)
    with pytest.raises(ValueError, match="choose one of"):
        glyphs.load("validation", root)


def test_thumbnails_are_pillow_13s_pad_and_survive_a_thin_rule():
    """Older Pillows raise in ImageOps.pad on a render under 1/32 as wide as long; the dataset must not
    depend on the Pillow version (seen on a machine with another Pillow)."""
    from PIL import Image, ImageOps

    from lazymeta.data.glyphs import _pad

    rng = np.random.default_rng(0)
    for w, h in [(16, 16), (40, 7), (7, 40), (33, 17), (5, 90), (90, 5), (1, 1)]:
        image = Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8))
        assert (np.asarray(_pad(image, 16)) == np.asarray(ImageOps.pad(image, (16, 16), Image.Resampling.BOX))).all()
    thin = Image.new("L", (1, 40), 255)
    assert np.asarray(_pad(thin, 16)).max() == 0 and _pad(thin, 16).size == (16, 16)
