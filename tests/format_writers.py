"""Writers of the original on-disk formats (Python 2 pickles, tar archives) and hostile files, for tests."""
from __future__ import annotations

import io
import os
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
from shared_data import require_shared

MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
               "t10k-labels-idx1-ubyte.gz")
CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# The shared CIFAR-10 subset (the first 4,000 images of data_batch_1) cut into batches of the original layout.
CIFAR10_BATCHES = {"data_batch_1": slice(0, 2000), "data_batch_2": slice(2000, 2250),
                   "data_batch_3": slice(2250, 2500), "data_batch_4": slice(2500, 2750),
                   "data_batch_5": slice(2750, 3000), "test_batch": slice(3000, 4000)}


class Hostile:
    """Pickles as a call of ``os.system`` that would create ``marker``: what a malicious mirror could serve."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _Python2Pickler(pickle._Pickler):
    """Writes what Python 2's cPickle wrote for the CIFAR batches: protocol 2, ``str`` as BINSTRING."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_binstring(self, obj: str | bytes) -> None:
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        header = pickle.SHORT_BINSTRING + bytes([len(data)]) if len(data) < 256 else \
            pickle.BINSTRING + struct.pack("<i", len(data))
        self.write(header + data)
        self.memoize(obj)

    dispatch[str] = _save_binstring
    dispatch[bytes] = _save_binstring


def python2_pickle(obj: object) -> bytes:
    """``obj`` pickled as Python 2 with NumPy 1.x did (``numpy.core.multiarray`` globals)."""
    buffer = io.BytesIO()
    _Python2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def cifar_batch(images_hwc: np.ndarray, labels: list[int], label_key: str = "labels", **extra) -> bytes:
    """One batch file: rows of R, G, B planes, as the original python version stores them."""
    rows = np.ascontiguousarray(images_hwc.transpose(0, 3, 1, 2)).reshape(len(images_hwc), -1)
    return python2_pickle({"batch_label": "training batch", label_key: list(labels), "data": rows,
                           "filenames": [f"image_{i:05d}.png" for i in range(len(labels))], **extra})


def write_tar(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def shared_cifar10() -> tuple[np.ndarray, np.ndarray]:
    with np.load(require_shared("cifar10/cifar10_data_batch_1_first4000_lossless.npz")) as source:
        return source["x"], source["y"].astype(np.int64)
