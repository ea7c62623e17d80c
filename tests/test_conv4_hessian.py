"""Conv4's hand-written Hessian-vector product is autograd's double backward (float64, several shapes) and the
gradient's finite difference; second-order students step with it, and every second-order algorithm's
meta-gradient equals autograd's (iMAML's implicit one: tests/test_conv4_gradient.py)."""
import gc
import weakref

import pytest
import torch
import torch.nn.functional as F

from lazymeta import Student
from lazymeta.learner import classification_losses
from lazymeta.models import Conv4
from lazymeta.models.conv4_hessian import Conv4SecondOrder
from lazymeta.params import flat, functional, unflat
from tests.test_conv4 import textbook
from tests.test_conv4_gradient import SHAPES, autograd_and_hand_written_updates, random_params


def autograd_hessian_vector(params, x, y, ways, v):
    leaves = {n: p.detach().clone().requires_grad_(True) for n, p in params.items()}
    first = torch.autograd.grad(F.cross_entropy(textbook(leaves, x)[:, :ways], y), list(leaves.values()),
                                create_graph=True)
    return [torch.zeros_like(p) if g is None else g
            for p, g in zip(leaves.values(), torch.autograd.grad(first, list(leaves.values()), v, allow_unused=True))]


def batch(in_channels, side, ways, shots, dtype=torch.float64):
    return torch.randn(ways * shots, in_channels, side, side, dtype=dtype), torch.arange(ways * shots) % ways


@SHAPES
def test_equals_autograds_double_backward_in_float64(in_channels, side, hidden, head, ways, shots):
    torch.manual_seed(10)
    model = Conv4(in_channels, side, head, hidden).double()
    params = random_params(model, torch.float64)
    x, y = batch(in_channels, side, ways, shots)
    v = [torch.randn_like(p) for p in params.values()]
    hessian = model.cross_entropy_gradient(x, y, ways).hessian_at(params)
    for name, a, b in zip(params, hessian(v), autograd_hessian_vector(params, x, y, ways, v)):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11, msg=name)
        assert a.shape == params[name].shape


def test_matches_finite_differences_of_the_gradient():
    torch.manual_seed(11)
    model = Conv4(1, 16, 3, 4).double()
    params = random_params(model, torch.float64)
    x, y = batch(1, 16, 3, 2)
    hand = model.cross_entropy_gradient(x, y, 3)
    direction = torch.randn(flat(params).numel(), dtype=torch.float64)
    product = flat(dict(zip(params, hand.hessian_at(params)(list(unflat(direction, params).values())))))
    h = 1e-5
    ahead, behind = (flat(dict(zip(params, hand(unflat(flat(params) + s * h * direction, params))))) for s in (1, -1))
    numeric = (ahead - behind) / (2 * h)
    assert (product - numeric).abs().max() < 1e-6 * max(1.0, float(numeric.abs().max()))


def test_its_differentiable_gradient_is_the_gradient_with_the_product_as_backward_and_keeps_no_output():
    torch.manual_seed(12)
    model = Conv4(1, 28, 5, 8).double()
    params = {n: p.requires_grad_(True) for n, p in random_params(model, torch.float64).items()}
    x, y = batch(1, 28, 5, 1)
    hand = model.cross_entropy_gradient(x, y, 5)
    grads = hand.differentiable(params)
    for a, b in zip(grads, hand(params)):
        assert torch.equal(a, b)
    v = [torch.randn_like(p) for p in params.values()]
    backward = torch.autograd.grad(grads, list(params.values()), v)
    for name, a, b in zip(params, backward, autograd_hessian_vector(params, x, y, 5, v)):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11, msg=name)
    # a third derivative is refused, not silently wrong
    with pytest.raises(RuntimeError, match="differentiate twice|does not require grad"):
        again = torch.autograd.grad(hand.differentiable(params)[0], params["features.0.0.weight"],
                                    torch.ones_like(params["features.0.0.weight"]), create_graph=True)[0]
        torch.autograd.grad(again.sum(), params["head.weight"])
    # the node keeps intermediates only: with the gradient dropped, it is freed at once, without the collector
    gc.disable()
    try:
        kept = weakref.ref(hand.differentiable(params)[2])
        assert kept() is None
    finally:
        gc.enable()


@pytest.mark.parametrize("algorithm", ["maml", "meta-sgd", "meta-curvature", "taml"])
def test_second_order_meta_gradients_equal_autograds_without_a_double_backward(algorithm, monkeypatch):
    def single_backward(grad):
        def checked(*args, **kwargs):
            assert not kwargs.get("create_graph"), "autograd's double backward was used"
            return grad(*args, **kwargs)
        return checked

    (slow_grads, *slow_scores, _), (fast_grads, *fast_scores, _) = autograd_and_hand_written_updates(
        algorithm, monkeypatch, single_backward, seed=13)
    assert len(fast_grads) == len(slow_grads)  # θ's, then the learned rates' or curvature's
    for a, b in zip(fast_grads, slow_grads):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-12)
    torch.testing.assert_close(fast_scores, slow_scores, rtol=1e-10, atol=0)


def test_second_order_students_step_with_it():
    torch.manual_seed(14)
    model = Conv4(1, 28, 5, 8)
    x, y = torch.rand(5, 1, 28, 28), torch.arange(5)
    train, _ = classification_losses(functional(model), 5, x, y, x, y)
    assert isinstance(model.cross_entropy_gradient(x, y, 5), Conv4SecondOrder) and train.differentiable is not None
    theta = {n: p.detach().requires_grad_(True) for n, p in model.named_parameters()}
    end = Student(2, 0.4).run(theta, train, create_graph=True)[-1]
    nodes, frontier = set(), [end["head.weight"].grad_fn]
    while frontier:  # the graph holds the hand-written gradient's nodes, no autograd backward pass of the network
        node = frontier.pop()
        if node is not None and node not in nodes:
            nodes.add(node)
            frontier += [child for child, _ in node.next_functions]
    names = {type(node).__name__ for node in nodes}
    assert "_GradientBackward" in names and not any("Convolution" in name for name in names), names
