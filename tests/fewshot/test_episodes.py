"""Sampler invariants, checked as properties over random settings."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lazymeta.data.base import ImageClasses, ImageTransform
from lazymeta.fewshot.episodes import EpisodeSampler


def make_data(classes=12, per_class=20, size=8):
    # every image is filled with a unique value so that images can be traced back: id = class * 100 + k
    ids = np.arange(classes)[:, None] * 100 + np.arange(per_class)[None, :]
    images = np.zeros((classes * per_class, 1, size, size), dtype=np.uint8)
    images[:, 0, 0, 0] = (ids.reshape(-1) // 100)  # class in pixel (0, 0)
    images[:, 0, 0, 1] = (ids.reshape(-1) % 100)   # instance in pixel (0, 1)
    images[:, 0, -1, -1] = 255  # a corner marker that moves under rotation
    labels = np.repeat(np.arange(classes), per_class)
    return ImageClasses(images, labels, tuple(f"c{i}" for i in range(classes)), ImageTransform(size))


def identity(x):
    """(class, instance) of each unrotated image of a float batch."""
    raw = (x * 255).round().long()
    return list(zip(raw[:, 0, 0, 0].tolist(), raw[:, 0, 0, 1].tolist()))


@settings(deadline=None, max_examples=25)
@given(ways=st.integers(1, 6), shots=st.integers(1, 5), val=st.integers(1, 3), queries=st.integers(0, 8),
       seed=st.integers(0, 10 ** 6), key=st.integers(0, 10 ** 6), order=st.sampled_from(["shuffled", "global"]))
def test_episode_shapes_labels_and_disjoint_parts(ways, shots, val, queries, seed, key, order):
    sampler = EpisodeSampler(make_data(), ways, shots, val, queries, label_order=order, seed=seed)
    ep = sampler.episode(0, key)
    for x, y, per in ((ep.support_x, ep.support_y, shots), (ep.val_x, ep.val_y, val), (ep.query_x, ep.query_y, queries)):
        assert x.shape == (ways * per, 1, 8, 8) and x.dtype == torch.float32
        assert torch.equal(torch.bincount(y, minlength=ways), torch.full((ways,), per))
    assert len(set(ep.classes.tolist())) == ways
    # the parts share no image, and each label is one class throughout the episode
    seen = {}
    for x, y in ((ep.support_x, ep.support_y), (ep.val_x, ep.val_y), (ep.query_x, ep.query_y)):
        for (cls, inst), label in zip(identity(x), y.tolist()):
            assert (cls, inst) not in seen
            seen[(cls, inst)] = label
            assert ep.classes[label] == cls
    if order == "global":
        assert list(ep.classes) == sorted(ep.classes)
    # reproducible from (seed, key) alone
    again = EpisodeSampler(make_data(), ways, shots, val, queries, label_order=order, seed=seed).episode(0, key)
    assert torch.equal(again.support_x, ep.support_x) and torch.equal(again.query_y, ep.query_y)


def test_labels_are_shuffled_per_task_by_default():
    sampler = EpisodeSampler(make_data(), 5, 1, 1, 0, seed=3)
    orders = {tuple(np.argsort(sampler.episode(0, i).classes)) for i in range(30)}
    assert len(orders) > 10
    globally = EpisodeSampler(make_data(), 5, 1, 1, 0, label_order="global", seed=3)
    assert {tuple(np.argsort(globally.episode(0, i).classes)) for i in range(30)} == {tuple(range(5))}


def test_rotations_are_new_classes():
    data = make_data(classes=2)
    sampler = EpisodeSampler(data, 8, 1, 1, 0, rotations=(0, 90, 180, 270), seed=0)
    ep = sampler.episode(0, 0)
    assert sorted(ep.classes.tolist()) == list(range(8))
    corners = {(int(c), tuple(torch.nonzero(x[0] == 1.0)[0].tolist())) for c, x in zip(ep.classes, ep.support_x)}
    assert len({corner for _, corner in corners}) == 4  # the marker pixel lands in four different corners


def test_clear_errors_for_impossible_episodes():
    with pytest.raises(ValueError, match="fewer than ways=13"):
        EpisodeSampler(make_data(), 13, 1)
    with pytest.raises(ValueError, match="only 20 images"):
        EpisodeSampler(make_data(), 5, 5, 1, 15)
    with pytest.raises(ValueError, match="multiples of 90"):
        EpisodeSampler(make_data(), 5, 1, rotations=(0, 45))
