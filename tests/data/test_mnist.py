"""MNIST on the real IDX files of shared/data, and on generated corrupt and truncated variants."""
from __future__ import annotations

import gzip
import hashlib
from dataclasses import replace

import numpy as np
import pytest
from shared_data import require_shared

from lazymeta.data import load_split, mnist
from lazymeta.data.download import DatasetError

# md5 of the decompressed files (shared/data/MANIFEST.md section 2: the canonical values)
UNCOMPRESSED_MD5 = {"train-images-idx3-ubyte.gz": "6bbc9ace898e44ae57da46a324031adb",
                    "t10k-images-idx3-ubyte.gz": "2646ac647ad5339dbf082846283269ea",
                    "t10k-labels-idx1-ubyte.gz": "27ae3e4e09519cfbb04c329615203637",
                    "train-labels-idx1-ubyte.gz": "a25bea736e30d166cdddb491f175f624"}


@pytest.mark.data
def test_shared_files_are_the_canonical_content(mnist_root):
    for name, md5 in UNCOMPRESSED_MD5.items():
        assert hashlib.md5(gzip.decompress((mnist_root / "mnist" / name).read_bytes())).hexdigest() == md5, name


@pytest.mark.data
@pytest.mark.parametrize("split, count", [("train", 60000), ("test", 10000)])
def test_splits(mnist_root, split, count):
    data = load_split("mnist", split, root=mnist_root)
    assert data.images.shape == (count, 1, 28, 28) and data.images.dtype == np.uint8
    assert data.classes == tuple("0123456789") and np.bincount(data.labels).min() > 0.08 * count
    raw = gzip.decompress(require_shared(f"mnist/{'t10k' if split == 'test' else split}-images-idx3-ubyte.gz")
                          .read_bytes())
    assert data.images.tobytes() == raw[16:]  # pixel for pixel, in file order
    assert isinstance(data.images, np.memmap)


def _idx(magic: bytes, dims: tuple[int, ...], payload: bytes) -> bytes:
    return b"\0\0" + magic + np.array(dims, ">u4").tobytes() + payload


@pytest.fixture
def write_test_split(tmp_path, monkeypatch):
    """Writes gzipped IDX test files into tmp_path/mnist (the images cut short by ``cut`` compressed bytes),
    and trusts their md5 as if published, so that the content checks are what is tested."""
    directory = tmp_path / "mnist"
    directory.mkdir()

    def write(images: bytes, labels: bytes, cut: int = 0) -> None:
        remotes = mnist.REMOTES["test"]
        (directory / remotes[0].filename).write_bytes(gzip.compress(images)[:len(gzip.compress(images)) - cut])
        (directory / remotes[1].filename).write_bytes(gzip.compress(labels))
        monkeypatch.setitem(mnist.REMOTES, "test", tuple(
            replace(r, md5=hashlib.md5((directory / r.filename).read_bytes()).hexdigest()) for r in remotes))

    return write


GOOD_IMAGES = _idx(b"\x08\x03", (10000, 28, 28), bytes(10000 * 784))
GOOD_LABELS = _idx(b"\x08\x01", (10000,), bytes(range(10)) * 1000)


@pytest.mark.parametrize("images, labels, cut, message", [
    (GOOD_IMAGES, GOOD_LABELS, 100, "t10k-images-idx3-ubyte.gz is truncated or corrupt"),
    (GOOD_IMAGES[:-1], GOOD_LABELS, 0, "t10k-images-idx3-ubyte.gz holds 7840015 bytes after decompression, but"),
    (_idx(b"\x08\x01", (10000,), bytes(10000)), GOOD_LABELS, 0, "t10k-images-idx3-ubyte.gz is not an IDX file of 3"),
    (b"\x00\x00\x08", GOOD_LABELS, 0, "t10k-images-idx3-ubyte.gz is not an IDX file of 3 dimension"),
    (GOOD_IMAGES, _idx(b"\x08\x01", (9999,), bytes(9999)), 0, r"hold images \(10000, 28, 28\) and labels \(9999,\)"),
    (GOOD_IMAGES, _idx(b"\x08\x01", (10000,), bytes([10]) * 10000), 0, r"\(max 10\)"),
])
def test_corrupt_and_truncated_files_are_named(tmp_path, write_test_split, images, labels, cut, message):
    write_test_split(images, labels, cut)
    with pytest.raises(DatasetError, match=message):
        mnist.load("test", tmp_path)
    assert not list((tmp_path / "mnist").glob("cache/*.np[yz]"))  # nothing half-decoded is left


def test_checksums_are_verified(tmp_path):
    (tmp_path / "mnist").mkdir()
    for remote, content in zip(mnist.REMOTES["test"], (GOOD_IMAGES, GOOD_LABELS)):
        (tmp_path / "mnist" / remote.filename).write_bytes(gzip.compress(content))
    with pytest.raises(DatasetError, match="t10k-images-idx3-ubyte.gz is not the expected file.*"
                                           "expected 9fb629c4189551a2d022fa330f9573f3"):
        mnist.load("test", tmp_path)


def test_generated_split_loads_and_resizes(tmp_path, write_test_split):
    pixels = np.random.default_rng(0).integers(0, 256, (10000, 28, 28), dtype=np.uint8)
    write_test_split(_idx(b"\x08\x03", (10000, 28, 28), pixels.tobytes()), GOOD_LABELS)
    data = mnist.load("test", tmp_path, image_size=14)
    assert data.images.shape == (10000, 1, 14, 14) and data.transform.size == 14
    assert np.array_equal(mnist.load("test", tmp_path).images[:, 0], pixels)
    assert sorted(p.name for p in (tmp_path / "mnist" / "cache").iterdir()) == [
        "test_14px.npy", "test_14px.npz", "test_28px.npy", "test_28px.npz"]


def test_missing_files_say_what_to_put_where(tmp_path):
    with pytest.raises(DatasetError) as error:
        load_split("mnist", "train", root=tmp_path)
    for remote in mnist.REMOTES["train"]:
        assert remote.filename in str(error.value) and remote.md5 in str(error.value)
        assert remote.urls[0] in str(error.value)
    assert str(tmp_path / "mnist") in str(error.value)


@pytest.mark.data
def test_download_from_the_original_urls(tmp_path, monkeypatch):
    """download=True fetches and verifies the md5 (file:// stands in for the S3 bucket)."""
    for split, remotes in mnist.REMOTES.items():
        local = tuple(replace(r, urls=(require_shared(f"mnist/{r.filename}").as_uri(),),
                              md5=hashlib.md5(require_shared(f"mnist/{r.filename}").read_bytes()).hexdigest())
                      for r in remotes)
        monkeypatch.setitem(mnist.REMOTES, split, local)
    assert mnist.load("test", tmp_path, download=True).images.shape == (10000, 1, 28, 28)
    assert sorted(p.name for p in (tmp_path / "mnist").glob("*.gz")) == sorted(
        r.filename for r in mnist.REMOTES["test"])
