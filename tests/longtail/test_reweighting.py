"""The meta-gradients of the re-weighting methods, checked in float64 against independent computations.

With ``θ̃(ε) = θ - η ∇_θ (1/B) Σ_i (w_i + ε_i) l_i(θ)`` the ε-gradient of a validation loss L at ε = 0 is
``∂L/∂ε_i = -(η/B) ∇L(θ̃)·∇l_i(θ)`` (two-component weighting), times 1 - γ through the lazy leap
``θ̃(ε) + γ (φ_k - θ̃(ε))`` (φ_k a constant, γ the leap rate). Meta-Weight-Net differentiates L(θ̃(ψ)) in the
parameters ψ of its weighting network, θ̃(ψ) the look-ahead on its normalised weights. The tests compare the
code with central finite differences of these functions written out here, not with the code's own helpers.
"""
import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from lazymeta.longtail.config import MetaWeightNetConfig, MethodConfig
from lazymeta.longtail.methods import (
    METHODS,
    Context,
    LazyTwoComponent,
    LearningToReweight,
    MetaWeightNet,
    TwoComponent,
    build_method,
    frozen_statistics,
    lazy_gradient,
    train_step,
    two_component_gradient,
    val_metric,
)
from lazymeta.params import flat, functional
from lazymeta.student import Student
from lazymeta.teacher import LazyTeacher

LR, B = 0.5, 6


def tiny_model(track_running_stats: bool = False) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5, track_running_stats=track_running_stats), nn.Tanh(),
                         nn.Linear(5, 3)).double()


def batches():
    g = torch.Generator().manual_seed(1)
    x, xv = torch.randn(B, 4, generator=g, dtype=torch.float64), torch.randn(9, 4, generator=g, dtype=torch.float64)
    return x, torch.tensor([0, 0, 0, 1, 1, 2]), xv, torch.arange(9) % 3


def context(model, xv, yv, steps=3, gammas=(0.75, 0.8, 0.85, 0.9, 0.95)) -> Context:
    return Context(model, torch.tensor([0.3, 1.0, 1.7], dtype=torch.float64), (xv, yv), lr=LR,
                   student=Student(steps, 0.3), teacher=LazyTeacher(gammas, select="accuracy"))


def theta_tilde(model, x, y, weights):
    theta = {n: p.detach().requires_grad_(True) for n, p in model.named_parameters()}
    loss = (weights * F.cross_entropy(functional_call(model, theta, (x,)), y, reduction="none")).mean()
    grads = torch.autograd.grad(loss, list(theta.values()))
    return {n: (p - LR * g).detach() for (n, p), g in zip(theta.items(), grads)}


def finite_difference(f, n, h=1e-6):
    rows = []
    for i in range(n):
        e = torch.zeros(n, dtype=torch.float64)
        e[i] = h
        rows.append((f(e) - f(-e)) / (2 * h))
    return torch.stack(rows)


def val_loss(model, params, xv, yv):
    return F.cross_entropy(functional_call(model, params, (xv,)), yv)


def test_two_component_eps_gradient_matches_finite_differences():
    model, (x, y, xv, yv) = tiny_model(), batches()
    ctx = context(model, xv, yv)
    w = ctx.class_weights[y]
    expected = finite_difference(lambda eps: val_loss(model, theta_tilde(model, x, y, w + eps), xv, yv), B)
    grad, magnitudes = two_component_gradient(ctx, x, y)
    torch.testing.assert_close(grad, expected, rtol=1e-6, atol=1e-9)
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    tilde = torch.cat([p.reshape(-1) for p in theta_tilde(model, x, y, w).values()])
    torch.testing.assert_close(magnitudes["lookahead_step"], (tilde - theta).norm())


def test_two_component_weights_are_w_y_plus_eps_and_log_its_relative_size():
    model, (x, y, xv, yv) = tiny_model(), batches()
    ctx, tau = context(model, xv, yv), 0.3
    weighing = TwoComponent(eps_step=tau).weigh(ctx, x, y)
    eps = -tau * two_component_gradient(ctx, x, y)[0]
    w = ctx.class_weights[y]
    torch.testing.assert_close(weighing.weights, w + eps)
    torch.testing.assert_close(weighing.magnitudes["eps_relative"], eps.norm() / w.norm())
    assert 0 < float(weighing.magnitudes["eps_relative"]) and "gamma" not in weighing.magnitudes


def test_lazy_eps_gradient_matches_finite_differences_through_the_teacher_only():
    model, (x, y, xv, yv) = tiny_model(), batches()
    ctx = context(model, xv, yv)
    w = ctx.class_weights[y]
    grad, magnitudes = lazy_gradient(ctx, x, y)
    start = phi = theta_tilde(model, x, y, w)  # the student: k plain SGD steps on L_B(., 0) from θ̃(0), written out
    for _ in range(ctx.student.steps):
        phi = {n: p.requires_grad_(True) for n, p in phi.items()}
        loss = (w * F.cross_entropy(functional_call(model, phi, (x,)), y, reduction="none")).mean()
        grads = torch.autograd.grad(loss, list(phi.values()))
        phi = {n: (p - 0.3 * g).detach() for (n, p), g in zip(phi.items(), grads)}
    gamma = float(magnitudes["gamma"])
    assert gamma in ctx.teacher.gammas
    torch.testing.assert_close(magnitudes["student_displacement"], (flat(phi) - flat(start)).norm())

    def leap_loss(eps):
        theta = theta_tilde(model, x, y, w + eps)
        return val_loss(model, {n: theta[n] + gamma * (phi[n] - theta[n]) for n in theta}, xv, yv)

    torch.testing.assert_close(grad, finite_difference(leap_loss, B), rtol=1e-6, atol=1e-9)


def test_lazy_gradient_without_student_steps_is_one_minus_gamma_times_two_component():
    model, (x, y, xv, yv) = tiny_model(), batches()
    ctx = context(model, xv, yv, steps=0, gammas=(0.8,))
    grad, magnitudes = lazy_gradient(ctx, x, y)
    assert float(magnitudes["gamma"]) == pytest.approx(0.8) and float(magnitudes["student_displacement"]) == 0
    torch.testing.assert_close(grad, 0.2 * two_component_gradient(ctx, x, y)[0], rtol=1e-10, atol=1e-12)


def test_learning_to_reweight_weights_are_clipped_and_normalised():
    model, (x, y, xv, yv) = tiny_model(), batches()
    ctx = context(model, xv, yv)
    w = LearningToReweight().weigh(ctx, x, y).weights
    # Closed form at ε = 0 (θ̃ = θ): ∂L_val/∂ε_i = -(η/B) ∇L_val(θ)·∇l_i(θ), from per-example gradients.
    theta = {n: p.detach().requires_grad_(True) for n, p in model.named_parameters()}

    def flat(loss):
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(theta.values()), retain_graph=True)])

    g_val = flat(val_loss(model, theta, xv, yv))
    per_example = F.cross_entropy(functional_call(model, theta, (x,)), y, reduction="none")
    # batch norm couples the examples, so l_i's gradient is that of its own term of the batch loss
    grads = -(LR / B) * torch.stack([g_val @ flat(per_example[i]) for i in range(B)])
    expected = (-grads).clamp(min=0)
    assert (w >= 0).all() and (w[grads >= 0] == 0).all() and 0 < (grads < 0).sum() < B
    torch.testing.assert_close(w, expected * B / expected.sum(), rtol=1e-8, atol=1e-12)
    assert float(w.mean()) == pytest.approx(1.0)


@pytest.mark.parametrize("reading, points", [("leap-rate", (0.23, 0.18)), ("literal", (0.83, 0.78))])
def test_teacher_picks_the_only_gamma_that_classifies_the_validation_set(reading, points):
    """Boundary x = t between θ (t = 1) and φ_k (t = 0), t = 1 - γ for the leap rate (t = γ literally); a
    class-1 point just above t(0.8) and a class-0 point just below are both right only for γ = 0.8
    (γ ∈ {0.75, ..., 0.95})."""
    model = nn.Linear(1, 2).double()
    f64 = torch.float64
    theta = {"weight": torch.tensor([[0.0], [1.0]], dtype=f64), "bias": torch.tensor([0.0, -1.0], dtype=f64)}
    phi = {"weight": theta["weight"].clone(), "bias": torch.zeros(2, dtype=f64)}
    val = (torch.tensor([[points[0]], [points[1]]], dtype=torch.float64), torch.tensor([1, 0]))
    choice = LazyTeacher(select="accuracy", reading=reading).choose(theta, [phi], val_metric(functional(model), val))
    assert float(choice.gamma) == pytest.approx(0.8) and float(choice.accuracy) == 1.0


def test_look_aheads_leave_the_running_statistics_to_the_real_step():
    model, (x, y, xv, yv) = tiny_model(track_running_stats=True), batches()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    norm = model[1]
    with frozen_statistics(model):
        lazy_gradient(context(model, xv, yv), x, y)
    assert norm.num_batches_tracked == 0 and torch.equal(norm.running_mean, torch.zeros(5))
    train_step(LazyTwoComponent(eps_step=0.01), context(model, xv, yv), optimizer, x, y, reweight=True)
    assert norm.num_batches_tracked == 1 and norm.track_running_stats
    assert not torch.equal(norm.running_mean, torch.zeros(5, dtype=torch.float64))


def method(name: str):
    """The method in float64 (Meta-Weight-Net's network has the tiny model's dtype)."""
    if name == "meta-weight-net":
        return MetaWeightNet(MetaWeightNetConfig(hidden=3), dtype=torch.float64)
    return build_method(MethodConfig(name=name))


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_weighs_every_example_and_steps(name):
    model, (x, y, xv, yv) = tiny_model(track_running_stats=True), batches()
    before = [p.detach().clone() for p in model.parameters()]
    loss, weighing = train_step(method(name), context(model, xv, yv), torch.optim.SGD(model.parameters(), lr=0.1),
                                x, y, reweight=True)
    w = weighing.weights
    assert w.shape == y.shape and torch.isfinite(w).all() and torch.isfinite(loss) and not w.requires_grad
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_lazy_gradient_is_the_same_with_candidates_vmapped_as_on_a_gpu():
    """On a GPU the teacher scores its candidates in vmapped chunks, through batch norm with running buffers."""
    model, (x, y, xv, yv) = tiny_model(track_running_stats=True), batches()
    results = []
    for chunk in (1, 8):
        ctx = context(model, xv, yv)
        ctx = dataclasses.replace(ctx, teacher=dataclasses.replace(ctx.teacher, chunk=chunk))
        with frozen_statistics(model):
            results.append(lazy_gradient(ctx, x, y))
    (one, logged_one), (vmapped, logged_vmapped) = results
    torch.testing.assert_close(vmapped, one, rtol=1e-12, atol=1e-12)
    assert float(logged_vmapped["gamma"]) == float(logged_one["gamma"])
    assert model[1].num_batches_tracked == 0


def weight_net_loss(model, x, y, xv, yv, psi):
    """L_val(θ̃(ψ)) written out: V(l) = σ(W2 relu(W1 l + b1) + b2), w = B V / Σ V, θ̃ the look-ahead on w."""
    w1, b1, w2, b2 = psi
    with torch.no_grad():
        losses = F.cross_entropy(model(x), y, reduction="none")
    v = torch.sigmoid(torch.relu(losses[:, None] * w1[:, 0] + b1) @ w2[0] + b2[0])
    return val_loss(model, theta_tilde(model, x, y, v * B / v.sum()), xv, yv)


def weight_net(**settings) -> MetaWeightNet:
    """A float64 Meta-Weight-Net of 3 hidden units, all alive for positive losses (W1 > 0, b1 = 0)."""
    torch.manual_seed(1)
    mwn = MetaWeightNet(MetaWeightNetConfig(hidden=3, **settings), dtype=torch.float64)
    with torch.no_grad():
        mwn.net.layers[0].weight.abs_()
        mwn.net.layers[0].bias.zero_()
    return mwn


def test_meta_weight_net_meta_gradient_matches_finite_differences():
    model, (x, y, xv, yv) = tiny_model(), batches()
    mwn = weight_net()
    psi = [p.detach().clone() for p in mwn.net.parameters()]
    sizes = [p.numel() for p in psi]

    def loss_at(delta):
        parts = torch.split(delta, sizes)
        return weight_net_loss(model, x, y, xv, yv, [p + d.view_as(p) for p, d in zip(psi, parts)])

    grads, _, _ = mwn.meta_gradient(context(model, xv, yv), x, y)
    expected = finite_difference(loss_at, sum(sizes))
    torch.testing.assert_close(torch.cat([g.reshape(-1) for g in grads]), expected, rtol=1e-6, atol=1e-9)
    assert expected.abs().max() > 1e-6  # the check is not vacuous


def test_meta_weight_net_steps_its_network_then_weighs_with_it():
    model, (x, y, xv, yv) = tiny_model(), batches()
    mwn = weight_net(optimizer="sgd", lr=0.5, momentum=0.0, weight_decay=0.0)
    before = [p.detach().clone() for p in mwn.net.parameters()]
    grads, losses, _ = mwn.meta_gradient(context(model, xv, yv), x, y)
    weighing = mwn.weigh(context(model, xv, yv), x, y)
    for old, new, g in zip(before, mwn.net.parameters(), grads):
        torch.testing.assert_close(new.detach(), old - 0.5 * g)  # one plain SGD step on the meta-gradient
    with torch.no_grad():
        v = mwn.net(losses)
    torch.testing.assert_close(weighing.weights, v * B / v.sum())
    assert float(weighing.weights.mean()) == pytest.approx(1.0) and weighing.magnitudes["lookahead_step"] > 0


def test_meta_weight_net_state_round_trips():
    mwn = weight_net()
    model, (x, y, xv, yv) = tiny_model(), batches()
    mwn.weigh(context(model, xv, yv), x, y)  # one Adam step: moments in the optimizer state
    fresh = MetaWeightNet(MetaWeightNetConfig(hidden=3), dtype=torch.float64)
    fresh.load_state_dict(copy.deepcopy(mwn.state_dict()))  # as from state.pt: no tensor shared with mwn
    assert all(torch.equal(a, b) for a, b in zip(mwn.net.parameters(), fresh.net.parameters()))
    a, b = mwn.weigh(context(model, xv, yv), x, y), fresh.weigh(context(model, xv, yv), x, y)
    torch.testing.assert_close(a.weights, b.weights, rtol=0, atol=0)
