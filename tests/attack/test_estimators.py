"""Zeroth-order estimates against autograd on a smooth loss (float64), and the margin loss's definition."""
import torch

from lazymeta.attack.estimators import coordinate_differences, nes
from lazymeta.attack.gradients import margin_loss

torch.manual_seed(0)
W = torch.randn(6, 12, dtype=torch.float64)


def smooth(images, owners=None):
    """A smooth per-image loss of (B, 1, 3, 4) inputs."""
    return torch.sin(images.flatten(1) @ W.T).pow(2).sum(1) + images.flatten(1).pow(3).sum(1)


def autograd(x):
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(smooth(x).sum(), x)
    return g.flatten(1)


def test_coordinate_differences_match_autograd():
    x = torch.rand(3, 1, 3, 4, dtype=torch.float64)
    coords = torch.stack([torch.randperm(12)[:5] for _ in range(3)])
    exact = autograd(x).gather(1, coords)
    symmetric = coordinate_differences(smooth, x, coords, h=1e-5, symmetric=True)
    one_sided = coordinate_differences(smooth, x, coords, h=1e-7, base=smooth(x))
    torch.testing.assert_close(symmetric, exact, rtol=0, atol=1e-8)
    torch.testing.assert_close(one_sided, exact, rtol=0, atol=1e-5)  # O(h) bias
    torch.testing.assert_close(coordinate_differences(smooth, x, coords, h=1e-7), one_sided)


def test_nes_estimate_points_along_the_gradient():
    x = torch.rand(2, 1, 3, 4, dtype=torch.float64)
    estimate = nes(smooth, x, samples=4000, sigma=1e-4, generator=torch.Generator().manual_seed(0)).flatten(1)
    cosine = torch.nn.functional.cosine_similarity(estimate, autograd(x))
    assert (cosine > 0.97).all(), cosine


def test_margin_loss_is_zero_exactly_when_the_attack_succeeded():
    log_probs = torch.log_softmax(torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0]]), 1)
    labels = torch.tensor([0, 0])
    torch.testing.assert_close(margin_loss(log_probs, labels), torch.tensor([1.0, 0.0]))
    targets = torch.tensor([2, 1])  # targeted: log p_t must beat every other class
    torch.testing.assert_close(margin_loss(log_probs, labels, targets), torch.tensor([2.0, 0.0]))
