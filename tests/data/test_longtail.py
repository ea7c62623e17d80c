"""Long-tailed datasets: Cui et al.'s profile and the two-component-weighting variant (table c8 of field.md)."""
from __future__ import annotations

import numpy as np
import pytest

from lazymeta.data.base import ImageClasses, ImageTransform
from lazymeta.data.longtail import long_tailed, tail_counts


def _balanced(classes: int, per_class: int) -> ImageClasses:
    labels = np.tile(np.arange(classes), per_class)  # interleaved, as CIFAR's batches are
    images = np.arange(len(labels), dtype=np.uint32).view(np.uint8).reshape(-1, 1, 2, 2)
    return ImageClasses(images=images, labels=labels, classes=tuple(map(str, range(classes))),
                        transform=ImageTransform(size=2))


def test_cifar10_cui_profile():
    train, held = long_tailed(_balanced(10, 5000), 100)
    assert held is None
    assert np.bincount(train.labels).tolist() == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]


@pytest.mark.parametrize("factor, cui, holdout", [
    (200, (500, 2, 9502), (490, 2, 9304)), (100, (500, 5, 10847), (490, 4, 10626)),
    (50, (500, 10, 12608), (490, 9, 12354)), (20, (500, 25, 15907), (490, 24, 15594)),
])
def test_cifar100_lt_counts(factor, cui, holdout):
    data = _balanced(100, 500)
    for (head, tail, total), per_class in ((cui, 0), (holdout, 10)):
        train, held = long_tailed(data, factor, holdout_per_class=per_class, seed=factor)
        counts = np.bincount(train.labels, minlength=100)
        assert (counts[0], counts[-1], counts.sum()) == (head, tail, total)
        assert (held is None) == (per_class == 0)
    assert np.bincount(held.labels).tolist() == [10] * 100
    ids = lambda d: set(d.images.reshape(len(d.images), -1).view(np.uint32).ravel().tolist())  # noqa: E731
    assert not ids(train) & ids(held)  # validation images never appear in training
    assert np.all(np.diff(sorted(ids(train))) > 0) and train.classes == data.classes


def test_seed_head_and_step_profile():
    data = _balanced(10, 100)
    first, second = long_tailed(data, 10, seed=1)[0], long_tailed(data, 10, seed=2)[0]
    assert np.array_equal(np.bincount(first.labels), np.bincount(second.labels))
    assert not np.array_equal(first.images, second.images)
    assert np.bincount(long_tailed(data, 10, head=50)[0].labels)[0] == 50
    assert tail_counts(4, 100, 10, "step") == [100, 100, 10, 10]
    with pytest.raises(ValueError, match="fewer than the 200"):
        long_tailed(data, 10, head=200)
    with pytest.raises(ValueError, match="imbalance is largest / smallest"):
        tail_counts(10, 100, 0.5)
