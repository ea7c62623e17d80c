"""The restricted unpickler and the array caches shared by the loaders."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
from format_writers import Hostile, python2_pickle

from lazymeta.data.download import DatasetError
from lazymeta.data.formats import cached_split, load_pickle


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_code_executing_pickle_is_refused_before_it_runs(tmp_path, protocol):
    marker = tmp_path / "pwned"
    path = tmp_path / "mini-imagenet-cache-train.pkl"
    path.write_bytes(pickle.dumps({"image_data": np.zeros(3), "class_dict": Hostile(marker)}, protocol=protocol))
    with pytest.raises(DatasetError, match=f"{path} refers to (posix|os).system, which no dataset pickle holds"):
        load_pickle(path)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_arrays_and_containers_round_trip(tmp_path, protocol):
    content = {"a": np.arange(12, dtype=np.uint8).reshape(3, 4), "b": [1, 2.5, "x", b"\xff"], "c": (None, True),
               "d": {3, 4}, "e": np.float32(1.5), "f": np.array(["n01", "n02"])}
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps(content, protocol=protocol))
    loaded = load_pickle(path)
    assert loaded.keys() == content.keys() and loaded["b"] == content["b"] and loaded["d"] == {3, 4}
    np.testing.assert_array_equal(loaded["a"], content["a"])
    np.testing.assert_array_equal(loaded["f"], content["f"])


def test_python2_pickles_with_numpy_1_globals(tmp_path):
    path = tmp_path / "batch"
    path.write_bytes(python2_pickle({"data": np.arange(6, dtype=np.uint8).reshape(2, 3), "labels": [0, 1]}))
    assert b"cnumpy.core.multiarray\n_reconstruct" in path.read_bytes()
    loaded = load_pickle(path)
    assert loaded["labels"] == [0, 1] and loaded["data"].tolist() == [[0, 1, 2], [3, 4, 5]]


def test_truncated_and_foreign_pickles_are_named(tmp_path):
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps({"a": np.zeros(1000)})[:-50])
    with pytest.raises(DatasetError, match=f"{path} is truncated or not a valid pickle"):
        load_pickle(path)
    path.write_bytes(b"<html>quota exceeded</html>")
    with pytest.raises(DatasetError, match=f"{path} is truncated or not a valid pickle"):
        load_pickle(path)
    path.write_bytes(pickle.dumps(__import__("collections").OrderedDict(a=1)))
    with pytest.raises(DatasetError, match="refers to collections.OrderedDict"):
        load_pickle(path)


def test_cache_is_rebuilt_when_an_original_changes_and_outlives_its_deletion(tmp_path):
    original = tmp_path / "source.bin"
    original.write_bytes(b"1")
    builds = []

    def build(allocate):
        builds.append(1)
        allocate((2, 1, 4, 4))[:] = len(builds)
        return {"labels": np.array([0, 1])}

    assert cached_split(tmp_path, "train", 4, 4, 1, [original], build)["images"].max() == 1
    assert cached_split(tmp_path, "train", 4, 4, 1, [original], build)["images"].max() == 1 and len(builds) == 1
    original.write_bytes(b"22")
    assert cached_split(tmp_path, "train", 4, 4, 1, [original], build)["images"].max() == 2
    original.unlink()
    arrays = cached_split(tmp_path, "train", 4, 2, 1, [original], build)
    assert len(builds) == 2 and arrays["images"].shape == (2, 1, 2, 2) and isinstance(arrays["images"], np.memmap)
    assert cached_split(tmp_path, "train", 4, 4, 2, [original], build)["images"].max() == 3  # new version


def test_failed_build_leaves_no_cache(tmp_path):
    def build(allocate):
        allocate((2, 1, 4, 4))
        raise DatasetError("bad image")

    with pytest.raises(DatasetError, match="bad image"):
        cached_split(tmp_path, "train", 4, 4, 1, [], build)
    assert list((tmp_path / "cache").iterdir()) == []
