"""Conv4's hand-written cross-entropy gradient is autograd's: against autograd of the textbook network (float64
and float32, several shapes), against finite differences, and inside the student and the learner; its
graph-free scores (the teacher's) and value-and-gradient (the first-order outer passes') too."""
import pytest
import torch
import torch.nn.functional as F

from lazymeta import Student
from lazymeta.learner import MetaLearner, Task, classification_losses
from lazymeta.models import Conv4
from lazymeta.models.conv4_gradient import Conv4Gradient
from lazymeta.params import detach, flat, functional, params_of, unflat
from lazymeta.student import TrainLoss
from lazymeta.teacher import LazyTeacher, ValMetric
from tests.test_conv4 import textbook


def autograd_gradient(params, x, y, ways):
    leaves = {n: p.detach().clone().requires_grad_(True) for n, p in params.items()}
    return torch.autograd.grad(F.cross_entropy(textbook(leaves, x)[:, :ways], y), list(leaves.values()))


def random_params(model, dtype):
    # away from the initialisation (BN weights 1, biases 0), so that every term of the gradient is exercised
    return {n: p.detach().to(dtype) + 0.3 * torch.randn_like(p, dtype=dtype) for n, p in model.named_parameters()}


SHAPES = pytest.mark.parametrize("in_channels, side, hidden, head, ways, shots", [
    (1, 28, 16, 5, 5, 1),     # Omniglot 5-way 1-shot: maps 28, 14, 7 and 3
    (1, 28, 8, 20, 20, 2),    # a wider head than the task's ways is cut at `ways`
    (3, 84, 8, 7, 5, 2),      # miniImageNet: three input channels, maps 84, 42, 21 and 10, 5x5 features
    (1, 20, 8, 5, 3, 3),      # maps 20, 10, 5 and 2 (the pooling of 5 drops a row)
])


@SHAPES
def test_equals_autograd_in_float64(in_channels, side, hidden, head, ways, shots):
    torch.manual_seed(0)
    model = Conv4(in_channels, side, head, hidden).double()
    params = random_params(model, torch.float64)
    x = torch.randn(ways * shots, in_channels, side, side, dtype=torch.float64)
    y = torch.arange(ways * shots) % ways
    ours = model.cross_entropy_gradient(x, y, ways)(params)
    for name, a, b in zip(params, ours, autograd_gradient(params, x, y, ways)):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11, msg=name)
        assert a.shape == params[name].shape


@SHAPES
def test_its_scores_and_value_and_gradient_are_autograds_loss_accuracy_and_gradient(in_channels, side, hidden, head,
                                                                                   ways, shots):
    torch.manual_seed(6)
    model = Conv4(in_channels, side, head, hidden).double()
    params = random_params(model, torch.float64)
    x = torch.randn(ways * shots, in_channels, side, side, dtype=torch.float64)
    y = torch.arange(ways * shots) % ways
    logits = textbook(params, x)[:, :ways]
    loss, accuracy = F.cross_entropy(logits, y), (logits.argmax(-1) == y).float().mean()
    ours = model.cross_entropy_gradient(x, y, ways)
    scores = ours.scores(params)
    torch.testing.assert_close(scores[0], loss, rtol=1e-12, atol=0)
    assert torch.equal(scores[1], accuracy)
    grads, *value = ours.value_and_gradient(params)
    assert all(torch.equal(a, b) for a, b in zip(value, scores))  # the same forward pass
    assert all(torch.equal(a, b) for a, b in zip(grads, ours(params)))


def test_the_validation_metric_scores_without_autograd_and_runs_the_plain_metric_otherwise():
    plain, fast = (torch.zeros(()), torch.zeros(())), (torch.ones(()), torch.ones(()))
    metric = ValMetric(lambda p: plain, lambda p: fast)
    params = {"w": torch.randn(3)}
    assert metric(params) is plain
    with torch.no_grad():
        assert metric(params) is fast
        w = torch.randn(4, 3)
        batched = torch.func.vmap(lambda p: metric(p)[0] + p["w"].sum())({"w": w})
    assert torch.equal(batched, w.sum(-1))  # under vmap, the plain metric's 0 (the graph-free forward is not vmappable)
    assert ValMetric(lambda p: plain)(params) is plain


def autograd_and_hand_written_updates(algorithm, monkeypatch, guard, teacher=None, seed=7):
    """One task's update (float64) by a learner on Conv4 with autograd and by one on its twin with the
    hand-written derivatives, whose ``torch.autograd.grad`` is ``guard(torch.autograd.grad)``."""
    torch.manual_seed(seed)
    fast, slow = (Conv4(1, 28, 5, 8, manual_gradient=m).double() for m in (True, False))
    slow.load_state_dict(fast.state_dict())
    x, val_x = torch.randn(5, 1, 28, 28, dtype=torch.float64), torch.randn(15, 1, 28, 28, dtype=torch.float64)
    task = Task(x, torch.arange(5), val_x, torch.arange(15) % 5)
    updates = []
    for model in (slow, fast):
        learner = MetaLearner(model, algorithm, Student(4, 0.4), teacher)
        if model is fast:
            monkeypatch.setattr(torch.autograd, "grad", guard(torch.autograd.grad))
        updates.append(learner._task_update(params_of(model), task))
        monkeypatch.undo()
    return updates


@pytest.mark.parametrize("algorithm, reading", [("fomaml", "leap-rate"), ("lazy-maml", "leap-rate"),
                                                ("lazy-maml", "literal"), ("imaml", "leap-rate")])
def test_first_order_outer_passes_take_it_and_give_autograds_meta_gradient(algorithm, reading, monkeypatch):
    def forbidden(grad):  # the whole task without autograd (iMAML's CG solve with the Hessian-vector product)
        return lambda *a, **k: pytest.fail("autograd was called")

    updates = autograd_and_hand_written_updates(algorithm, monkeypatch, forbidden, LazyTeacher(reading=reading))
    (slow_grads, *slow_scores, slow_leap), (fast_grads, *fast_scores, fast_leap) = updates
    for a, b in zip(fast_grads, slow_grads):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-12)
    torch.testing.assert_close(fast_scores, slow_scores, rtol=1e-10, atol=0)
    if slow_leap is not None:
        assert torch.equal(fast_leap.gamma, slow_leap.gamma) and torch.equal(fast_leap.alpha, slow_leap.alpha)


def test_equals_autograd_in_float32_and_its_convolution_bias_gradients_are_exactly_zero():
    torch.manual_seed(1)
    model = Conv4(1, 28, 5, 64)
    params = random_params(model, torch.float32)
    x, y = torch.rand(5, 1, 28, 28), torch.arange(5)
    ours = model.cross_entropy_gradient(x, y, 5)(params)
    ref = autograd_gradient(params, x, y, 5)
    scale = flat(dict(zip(params, ref))).abs().max()
    for name, a, b in zip(params, ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * scale, msg=name)
    for name, g in zip(params, ours):  # batch norm cancels every convolution's bias: its gradient is 0, not noise
        if name.endswith(".0.bias"):
            assert (g == 0).all(), name


def test_matches_finite_differences():
    torch.manual_seed(2)
    model = Conv4(1, 16, 3, 4).double()
    params = random_params(model, torch.float64)
    x, y = torch.randn(6, 1, 16, 16, dtype=torch.float64), torch.arange(6) % 3
    gradient = flat(dict(zip(params, model.cross_entropy_gradient(x, y, 3)(params))))
    theta, direction = flat(params), torch.randn(gradient.numel(), dtype=torch.float64)

    def loss(v):
        return float(F.cross_entropy(textbook(unflat(v, params), x), y))

    h = 1e-6
    numeric = (loss(theta + h * direction) - loss(theta - h * direction)) / (2 * h)
    assert abs(float(gradient @ direction) - numeric) < 1e-6 * max(1.0, abs(numeric))


def test_offered_only_where_it_applies():
    x, y = torch.randn(5, 1, 28, 28), torch.arange(5)
    assert isinstance(Conv4(1, 28, 5, 8).cross_entropy_gradient(x, y, 5), Conv4Gradient)
    assert Conv4(1, 28, 5, 8, pool="stride").cross_entropy_gradient(x, y, 5) is None
    assert Conv4(1, 28, 5, 8, manual_gradient=False).cross_entropy_gradient(x, y, 5) is None
    assert Conv4(1, 28, 5, 8).cross_entropy_gradient(x.to(torch.device("meta")), y, 5) is None

    class OtherForward(Conv4):
        def forward(self, x):
            return super().forward(2 * x)

    assert OtherForward(1, 28, 5, 8).cross_entropy_gradient(x, y, 5) is None
    edited = Conv4(1, 28, 5, 8)
    edited.features[2][0].padding = (0, 0)
    assert edited.cross_entropy_gradient(x, y, 5) is None


def test_the_student_steps_with_it_and_lands_where_autograd_does():
    torch.manual_seed(3)
    fast, slow = Conv4(1, 28, 5, 16), Conv4(1, 28, 5, 16, manual_gradient=False)
    slow.load_state_dict(fast.state_dict())
    x, y = torch.rand(5, 1, 28, 28), torch.arange(5)
    ends = []
    for model in (fast, slow):
        train, _ = classification_losses(functional(model), 5, x, y, x, y)
        assert (train.gradient is not None) == model.manual_gradient
        ends.append(Student(10, 0.4, keep_last=2).run(detach(params_of(model)), train))
    for a, b in zip(*ends):
        torch.testing.assert_close(flat(a), flat(b), rtol=1e-4, atol=1e-5)


def test_the_student_keeps_the_convolution_weights_channels_last_and_the_values_unchanged():
    torch.manual_seed(5)
    model = Conv4(1, 28, 5, 8)
    x, y = torch.rand(5, 1, 28, 28), torch.arange(5)
    train, _ = classification_losses(functional(model), 5, x, y, x, y)
    theta = detach(params_of(model))
    moved = train.layout(theta)
    assert all(torch.equal(moved[n], theta[n]) for n in theta)
    end = Student(3, 0.4, keep_last=2).run(theta, train)
    for name, p in end[-1].items():  # once at the start, then kept by every step: no conversion per step
        assert p.dim() != 4 or p.is_contiguous(memory_format=torch.channels_last), name
    plain = Student(3, 0.4, keep_last=2).run(theta, TrainLoss(train.loss, train.gradient))
    for a, b in zip(end, plain):
        torch.testing.assert_close(flat(a), flat(b), rtol=0, atol=0)
    assert Student(0, 0.4).run(theta, train)[0]["features.1.0.weight"].is_contiguous()  # no step, no copy
