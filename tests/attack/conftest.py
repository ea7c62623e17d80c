"""Fixtures of the meta-attack tests: real MNIST from shared/data and a tiny zoo trained on it once.

Under pytest's default import mode this file replaces ``tests/conftest.py`` as the module ``conftest``,
so it loads that file's ``require_shared`` by path.
"""
from __future__ import annotations

import runpy
import shutil
from pathlib import Path

import pytest
import torch

from lazymeta.attack.zoo import ZooSettings, correct, load_images, train_classifier

require_shared = runpy.run_path(str(Path(__file__).resolve().parents[1] / "conftest.py"))["require_shared"]
MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
               "t10k-labels-idx1-ubyte.gz")


@pytest.fixture(scope="session")
def mnist_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root with the shared MNIST files, decoded once (``verify=False``: the shared training
    images were re-gzipped, so only their compressed md5 differs; headers and sizes are still checked)."""
    from lazymeta.data import mnist

    sources = [require_shared(f"mnist/{name}") for name in MNIST_FILES]
    root = tmp_path_factory.mktemp("data")
    (root / "mnist").mkdir()
    for source in sources:
        shutil.copy(source, root / "mnist" / source.name)
    mnist.prepare(root, verify=False)
    return root


@pytest.fixture(scope="session")
def tiny_zoo(mnist_root: Path) -> dict[str, torch.nn.Module]:
    """LeNet-5 and net3 (white-box) and net4 (the target), 2 epochs on 3,000 real training digits."""
    images, labels = load_images("mnist", "train", str(mnist_root), 3000)
    settings = ZooSettings(epochs=2, lr=0.05)
    return {name: train_classifier(name, images, labels, settings, torch.Generator().manual_seed(i))
            for i, name in enumerate(("lenet5", "net3", "net4"))}


@pytest.fixture(scope="session")
def target_test_set(mnist_root: Path, tiny_zoo) -> tuple[torch.Tensor, torch.Tensor]:
    """Test digits that the target classifies correctly."""
    images, labels = load_images("mnist", "test", str(mnist_root), 600)
    ok = correct(tiny_zoo["net4"], images, labels)
    return images[ok], labels[ok]
