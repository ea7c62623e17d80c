"""Conv4's fast layouts (channels-last or not, max-pool before ReLU) compute the textbook conv-BN-ReLU-pool
network exactly: outputs, gradients and the second-order terms MAML differentiates through."""
import torch
import torch.nn.functional as F
from torch.func import functional_call, vmap

from lazymeta.models import Conv4


def textbook(params, x):
    for i in range(4):
        p = f"features.{i}"
        x = F.conv2d(x, params[f"{p}.0.weight"], params[f"{p}.0.bias"], padding=1)
        x = F.batch_norm(x, None, None, params[f"{p}.1.weight"], params[f"{p}.1.bias"], training=True)
        x = F.max_pool2d(F.relu(x), 2)
    return F.linear(x.flatten(1), params["head.weight"], params["head.bias"])


def test_same_function_and_derivatives_as_the_textbook_order():
    torch.manual_seed(0)
    model = Conv4(1, 28, 5, 16).double()
    params = {n: p.detach().requires_grad_(True) for n, p in model.named_parameters()}
    x, y = torch.randn(6, 1, 28, 28, dtype=torch.float64), torch.arange(6) % 5
    seen = []
    model.features[0][0].register_forward_hook(lambda module, inputs, out: seen.append(out))
    ours, ref = functional_call(model, params, (x,)), textbook(params, x)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    assert seen[0].stride(1) == 1  # the first convolution already answers in channels-last

    def second_order(out):  # d/dθ of |∇_θ loss|², as MAML's meta-gradient needs
        grads = torch.autograd.grad(F.cross_entropy(out, y), list(params.values()), create_graph=True)
        return torch.autograd.grad(sum(g.pow(2).sum() for g in grads), list(params.values()))

    for a, b in zip(second_order(functional_call(model, params, (x,))), second_order(textbook(params, x))):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    model.channels_last = False  # the NCHW layout second-order MAML runs in: the same function
    seen.clear()
    torch.testing.assert_close(functional_call(model, params, (x,)), ref, rtol=1e-12, atol=1e-12)
    assert seen[0].is_contiguous()
    for a, b in zip(second_order(functional_call(model, params, (x,))), second_order(textbook(params, x))):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_the_learner_picks_the_layout_for_its_algorithm():
    from lazymeta.learner import MetaLearner
    from lazymeta.student import Student

    # NCHW only where autograd's double backward runs through the module: second order without the
    # hand-written derivatives
    for algorithm, manual, nhwc in [("maml", False, False), ("maml", True, True), ("fomaml", False, True),
                                    ("lazy-maml", True, True), ("lazy-reptile", False, True)]:
        model = Conv4(1, 28, 5, 8, manual_gradient=manual)
        MetaLearner(model, algorithm, Student(steps=1, lr=0.1))
        assert model.channels_last is nhwc


def test_works_under_vmap_over_images_and_over_parameters():
    torch.manual_seed(0)
    model = Conv4(1, 28, 5, 8)
    params = {n: p.detach() for n, p in model.named_parameters()}
    x = torch.randn(3, 4, 1, 28, 28)
    per_batch = vmap(lambda xb: functional_call(model, params, (xb,)))(x)
    torch.testing.assert_close(per_batch, torch.stack([model(xb) for xb in x]))
    stacked = {n: torch.stack([p, 2 * p]) for n, p in params.items()}
    per_params = vmap(lambda p: functional_call(model, p, (x[0],)))(stacked)
    torch.testing.assert_close(per_params[1], functional_call(model, {n: 2 * p for n, p in params.items()}, (x[0],)))
