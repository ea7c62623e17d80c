"""Fixtures of the meta-attack tests: a tiny zoo trained once on the real MNIST of shared/data."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lazymeta.attack.gradients import input_gradients
from lazymeta.attack.metaattacker import GradientTask
from lazymeta.attack.zoo import ZooConfig, correct, load_images, train_classifier



@pytest.fixture(scope="session")
def tiny_zoo(mnist_root: Path) -> dict[str, torch.nn.Module]:
    """LeNet-5 and net3 (white-box) and net4 (the target), 2 epochs on 3,000 real training digits."""
    images, labels = load_images("mnist", "train", str(mnist_root), 3000)
    settings = ZooConfig(epochs=2, lr=0.05)
    return {name: train_classifier(name, images, labels, settings, torch.Generator().manual_seed(i))
            for i, name in enumerate(("lenet5", "net3", "net4"))}


@pytest.fixture(scope="session")
def target_test_set(mnist_root: Path, tiny_zoo) -> tuple[torch.Tensor, torch.Tensor]:
    """Test digits that the target classifies correctly."""
    images, labels = load_images("mnist", "test", str(mnist_root), 600)
    ok = correct(tiny_zoo["net4"], images, labels)
    return images[ok], labels[ok]


@pytest.fixture(scope="session")
def tasks(mnist_root, tiny_zoo, target_test_set):
    """Train tasks from the white-box models, and the held-out target's gradients on test digits."""
    images, labels = load_images("mnist", "train", str(mnist_root), 400)
    train = []
    for name in ("lenet5", "net3"):
        ok = correct(tiny_zoo[name], images, labels)
        train.append(GradientTask(images[ok], input_gradients(tiny_zoo[name], images[ok], labels[ok])))
    x, y = target_test_set
    return train, GradientTask(x[:100], input_gradients(tiny_zoo["net4"], x[:100], y[:100]))
