"""CIFAR-10 on real images (the shared subset in the original batch format), CIFAR-100, CIFAR-FS and FC100
on generated files of the original format, and hostile archives and pickles."""
from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from format_writers import (
    CIFAR10_BATCHES,
    CIFAR10_NAMES,
    Hostile,
    cifar_batch,
    python2_pickle,
    shared_cifar10,
    write_tar,
)
from shared_data import require_shared

from lazymeta.data import cifar, load_split
from lazymeta.data.download import DatasetError


@pytest.mark.data
def test_cifar10_subset_is_pixel_identical(cifar10_root):
    x, y = shared_cifar10()
    train, test = (load_split("cifar10", split, root=cifar10_root) for split in ("train", "test"))
    assert train.classes == CIFAR10_NAMES and train.groups == ()
    assert train.images.shape == (3000, 3, 32, 32) and test.images.shape == (1000, 3, 32, 32)
    np.testing.assert_array_equal(train.images, x[:3000].transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(test.images, x[3000:].transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(np.concatenate([train.labels, test.labels]), y)
    assert y[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]  # the known start of data_batch_1


@pytest.mark.data
def test_cifar10_resized(cifar10_root):
    data = cifar.load(cifar.CIFAR10, "test", cifar10_root, image_size=16)
    assert data.images.shape == (1000, 3, 16, 16) and data.transform.size == 16


@pytest.mark.data
def test_cifar10_archive_checksum_is_verified(cifar10_archive, tmp_path):
    (tmp_path / "cifar10").mkdir()
    (tmp_path / "cifar10" / "cifar-10-python.tar.gz").write_bytes(cifar10_archive.read_bytes())
    with pytest.raises(DatasetError, match="cifar-10-python.tar.gz is not the expected file.*"
                                           "expected c58f30108f718f92721af3b95e74349a"):
        load_split("cifar10", "train", root=tmp_path)


def test_missing_archive_says_what_to_put_where(tmp_path):
    with pytest.raises(DatasetError) as error:
        load_split("cifar100", "test", root=tmp_path)
    message = str(error.value)
    assert "cifar-100-python.tar.gz" in message and "eb9058c3a382ffc7106e4002c42a8d85" in message
    assert "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz" in message
    assert str(tmp_path / "cifar100") in message


def test_path_traversal_in_the_archive_is_refused(tmp_path):
    (tmp_path / "data" / "cifar10").mkdir(parents=True)
    write_tar(tmp_path / "data" / "cifar10" / "cifar-10-python.tar.gz",
              {"cifar-10-batches-py/batches.meta": b"x", "../../escaped": b"x"})
    with pytest.raises(DatasetError, match="would be written outside"):
        cifar.prepare(cifar.CIFAR10, tmp_path / "data", verify=False)
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "data" / "cifar10" / "cifar-10-batches-py").exists()


def test_code_executing_batch_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    members = {f"cifar-10-batches-py/{name}": pickle.dumps({"data": Hostile(marker)}, protocol=2)
               for name in [*CIFAR10_BATCHES, "batches.meta"]}
    (tmp_path / "cifar10").mkdir()
    write_tar(tmp_path / "cifar10" / "cifar-10-python.tar.gz", members)
    with pytest.raises(DatasetError, match="batches.meta refers to (posix|os).system.*refusing to load it"):
        cifar.prepare(cifar.CIFAR10, tmp_path, verify=False)
    assert not marker.exists()


def test_malformed_batch_is_named(tmp_path):
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    (folder / "batches.meta").write_bytes(python2_pickle({"label_names": list(CIFAR10_NAMES)}))
    for name in CIFAR10_BATCHES:
        (folder / name).write_bytes(cifar_batch(np.zeros((2, 32, 32, 3), np.uint8), [0, 1]))
    (folder / "test_batch").write_bytes(python2_pickle({"data": np.zeros((3, 3072), np.uint8), "labels": [0, 1]}))
    with pytest.raises(DatasetError, match=r"test_batch: 'data' is \(3, 3072\) for 2 labels"):
        cifar.prepare(cifar.CIFAR10, tmp_path, verify=False)
    (folder / "test_batch").write_bytes(python2_pickle({"labels": [0, 1]}))
    with pytest.raises(DatasetError, match="test_batch holds no 'data' entry"):
        cifar.prepare(cifar.CIFAR10, tmp_path, verify=False)


def _split_json(protocol: str, split: str) -> list:
    return json.loads(require_shared(f"splits/{protocol}/torchmeta/{split}.json").read_text())


@pytest.fixture(scope="module")
def cifar100_root(tmp_path_factory):
    """cifar-100-python.tar.gz generated in the original layout: 5 train + 1 test image per class, every
    pixel of an image equal to its fine label; the real class and superclass names (from the split files)."""
    pairs = [pair for split in ("train", "val", "test") for pair in _split_json("cifar-fs", split)]
    fine = sorted(name for _, name in pairs)
    coarse = sorted({group for group, _ in pairs})
    coarse_of = {name: coarse.index(group) for group, name in pairs}
    members = {"cifar-100-python/meta": python2_pickle({"fine_label_names": fine, "coarse_label_names": coarse})}
    for member, per_class in (("train", 5), ("test", 1)):
        labels = np.repeat(np.arange(100), per_class)
        images = np.broadcast_to(labels[:, None, None, None], (len(labels), 32, 32, 3)).astype(np.uint8)
        members[f"cifar-100-python/{member}"] = cifar_batch(
            images, labels.tolist(), "fine_labels", coarse_labels=[coarse_of[fine[i]] for i in labels])
    root = tmp_path_factory.mktemp("data")
    (root / "cifar100").mkdir()
    write_tar(root / "cifar100" / "cifar-100-python.tar.gz", members)
    cifar.prepare(cifar.CIFAR100, root, verify=False)
    return root


@pytest.mark.data
def test_cifar100_classes_and_superclasses(cifar100_root):
    data = load_split("cifar100", "train", root=cifar100_root)
    assert data.images.shape == (500, 3, 32, 32) and data.classes[:3] == ("apple", "aquarium_fish", "baby")
    assert data.groups[data.classes.index("dolphin")] == "aquatic_mammals" and len(set(data.groups)) == 20
    assert np.array_equal(data.images[:, 0, 0, 0], data.labels)


@pytest.mark.data
@pytest.mark.parametrize("split, count", [("train", 64), ("val", 16), ("test", 20)])
def test_cifar_fs_matches_the_split_files(cifar100_root, split, count):
    assert [list(pair) for pair in zip(load_split("cifar-fs", split, root=cifar100_root).groups,
                                       cifar.CIFAR_FS[split])] == _split_json("cifar-fs", split)
    data = load_split("cifar-fs", split, root=cifar100_root)
    assert data.num_classes == count and np.bincount(data.labels).tolist() == [6] * count  # train + test images
    fine = load_split("cifar100", "test", root=cifar100_root).classes
    assert [fine[v] for v in data.images[:, 0, 0, 0]] == [data.classes[label] for label in data.labels]


@pytest.mark.data
@pytest.mark.parametrize("split, count", [("train", 60), ("val", 20), ("test", 20)])
def test_fc100_matches_the_split_files(cifar100_root, split, count):
    assert list(cifar.FC100[split]) == _split_json("fc100", split)
    data = load_split("fc100", split, root=cifar100_root)
    assert data.num_classes == count and set(data.groups) == set(cifar.FC100[split])


def test_few_shot_splits_partition_cifar100():
    fs = [name for split in cifar.CIFAR_FS.values() for name in split]
    fc = [name for split in cifar.FC100.values() for name in split]
    assert len(fs) == len(set(fs)) == 100 and len(fc) == len(set(fc)) == 20
