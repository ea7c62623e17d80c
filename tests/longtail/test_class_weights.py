"""Class-balanced weights against the closed form of Cui et al. (2019)."""
import numpy as np
import pytest
import torch

from lazymeta.longtail.weights import class_balanced_weights


def test_closed_form():
    counts, beta = np.array([500, 120, 30, 5]), 0.999
    inverse_effective = (1 - beta) / (1 - beta ** counts)
    expected = inverse_effective * len(counts) / inverse_effective.sum()
    torch.testing.assert_close(class_balanced_weights(counts.tolist(), beta), torch.tensor(expected).float())


def test_limits_are_no_reweighting_and_inverse_frequency():
    torch.testing.assert_close(class_balanced_weights([500, 5], beta=0.0), torch.ones(2))
    w = class_balanced_weights([500, 50, 5], beta=1 - 1e-12)
    torch.testing.assert_close(w / w[0], torch.tensor([1.0, 10.0, 100.0]), rtol=1e-4, atol=0)


def test_default_beta_sums_to_the_number_of_classes():
    w = class_balanced_weights([490, 4, 100, 9])
    assert float(w.sum()) == pytest.approx(4) and torch.argmax(w) == 1


@pytest.mark.parametrize("counts, beta", [([5, 0], 0.99), ([5, 2], 1.0), ([[5]], 0.9)])
def test_invalid_input_is_named(counts, beta):
    with pytest.raises(ValueError, match="counts|beta"):
        class_balanced_weights(counts, beta)
