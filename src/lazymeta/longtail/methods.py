"""Per-example loss weights of the long-tail methods: one function per method, one shared update.

Every method is ``weights(ctx, x, y) -> w`` (one detached weight per example of the batch); the real step
is always ``θ ← θ - η ∇_θ (1/|B|) Σ_i w_i CE_i(θ)`` with the run's optimizer (:func:`train_step`). The
meta-learned methods differ only in how they get w from a look-ahead on the balanced validation batch:

- learning to reweight (Ren et al. 2018): ``w ∝ max(-∂L_val(θ̃(ε))/∂ε, 0)`` at ε = 0, with
  ``θ̃(ε) = θ - η ∇_θ (1/|B|) Σ_i ε_i CE_i(θ)``, normalised to mean 1 (Ren's sum-to-1 weights on a summed
  loss are this on a mean loss);
- two-component weighting (Jamal et al. 2020): ``w = w_y + ε`` with ``ε = -τ ∂L_val(θ̃(ε))/∂ε`` at ε = 0 and
  ``θ̃(ε) = θ - η ∇_θ L_B(θ, ε)``, ``L_B(θ, ε) = (1/|B|) Σ_i (w_{y_i} + ε_i) CE_i(θ)``;
- lazy two-component weighting (the paper's Algorithm 2): the student runs k SGD steps on L_B from
  θ̃(0), the lazy teacher picks the leap rate γ by validation accuracy, and
  ``ε = -τ ∂L_val(θ̃(ε) + γ (φ_k - θ̃(ε)))/∂ε`` (φ_k a constant, so the gradient flows through θ̃ only, scaled by
  1 - γ).

Batch norm: look-aheads, student steps and candidate scoring normalise with their own batch statistics and
leave the running statistics alone (:func:`frozen_statistics`); only the real step updates them, so a
look-ahead never leaks the validation batch into the model that is tested.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lazymeta.params import Params, functional
from lazymeta.student import Student
from lazymeta.teacher import LazyTeacher, Leap

Forward = Callable[[Params, Tensor], Tensor]


@dataclass(frozen=True)
class Context:
    """What a method may look at when it weighs one training batch.

    Args:
        model: the network being trained (its current parameters are θ).
        class_weights: the class-balanced weight w_c of every class (C,).
        val: a balanced validation batch ``(x, y)``; None for methods that need none.
        lr: η, the look-ahead step size (the real step's current learning rate by default).
        eps_step: τ, the step on ε of the two-component methods.
        student: the lazy method's student (k steps of L_B).
        teacher: the lazy method's teacher (γ grid, selection by validation accuracy).
    """

    model: nn.Module
    class_weights: Tensor
    val: tuple[Tensor, Tensor] | None = None
    lr: float = 0.1
    eps_step: float = 1.0
    student: Student | None = None
    teacher: LazyTeacher | None = None


@contextmanager
def frozen_statistics(model: nn.Module) -> Iterator[None]:
    """Batch norms use batch statistics and update no running buffers (also safe under ``vmap``)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    tracked = [m.track_running_stats for m in norms]
    for m in norms:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m, flag in zip(norms, tracked):
            m.track_running_stats = flag


def leaf_params(model: nn.Module) -> Params:
    """θ as fresh leaves: a look-ahead differentiates through a copy, never into the model's ``.grad``."""
    return {n: p.detach().requires_grad_(True) for n, p in model.named_parameters()}


def weighted_loss(logits: Tensor, y: Tensor, weights: Tensor) -> Tensor:
    """``(1/|B|) Σ_i w_i CE_i``: L_B of every method and of the real step."""
    return (weights * F.cross_entropy(logits, y, reduction="none")).mean()


def look_ahead(forward: Forward, theta: Params, x: Tensor, y: Tensor, weights: Tensor, lr: float) -> Params:
    """``θ̃ = θ - η ∇_θ L_B(θ)``, differentiable in ``weights`` (and in θ) for the meta-gradient."""
    grads = torch.autograd.grad(weighted_loss(forward(theta, x), y, weights), list(theta.values()),
                                create_graph=True)
    return {n: p - lr * g for (n, p), g in zip(theta.items(), grads)}


def val_metric(forward: Forward, val: tuple[Tensor, Tensor]) -> Callable[[Params], tuple[Tensor, Tensor]]:
    """``params -> (mean CE, accuracy)`` on the validation batch (the teacher's metric)."""
    x, y = val

    def metric(params: Params) -> tuple[Tensor, Tensor]:
        logits = forward(params, x)
        return F.cross_entropy(logits, y), (logits.argmax(-1) == y).float().mean()

    return metric


def _eps_gradient(ctx: Context, x: Tensor, y: Tensor, base: Tensor,
                  leap: Callable[[Params, Forward], Params]) -> Tensor:
    """``∂L_val(leap(θ̃(ε)))/∂ε`` at ε = 0, ``θ̃(ε)`` the look-ahead on ``(base + ε) · CE``."""
    forward = functional(ctx.model)
    eps = torch.zeros(len(y), dtype=base.dtype, device=base.device, requires_grad=True)
    theta = look_ahead(forward, leaf_params(ctx.model), x, y, base + eps, ctx.lr)
    loss, _ = val_metric(forward, ctx.val)(leap(theta, forward))
    (grad,) = torch.autograd.grad(loss, eps)
    return grad


def two_component_gradient(ctx: Context, x: Tensor, y: Tensor) -> Tensor:
    """``∂L_val(θ̃(ε))/∂ε`` at ε = 0 (Jamal et al.: one look-ahead, no student)."""
    return _eps_gradient(ctx, x, y, ctx.class_weights[y], lambda theta, forward: theta)


def lazy_gradient(ctx: Context, x: Tensor, y: Tensor) -> tuple[Tensor, Leap]:
    """``∂L_val(θ̃(ε) + γ (φ_k - θ̃(ε)))/∂ε`` at ε = 0, and the teacher's choice of γ.

    The student starts from θ̃(0) (detached) and takes k steps on ``L_B(·, 0)``; the teacher scores every γ
    on the validation batch; the leap is differentiable in θ̃(ε) only.
    """
    chosen: list[Leap] = []
    base = ctx.class_weights[y]

    def leap(theta: Params, forward: Forward) -> Params:
        checkpoints = ctx.student.run(theta, lambda phi: weighted_loss(forward(phi, x), y, base))
        choice = ctx.teacher.choose(theta, checkpoints, val_metric(forward, ctx.val))
        chosen.append(choice)
        return ctx.teacher.leap(theta, checkpoints, choice)

    return _eps_gradient(ctx, x, y, base, leap), chosen[0]


def cross_entropy(ctx: Context, x: Tensor, y: Tensor) -> Tensor:
    return torch.ones_like(ctx.class_weights[y])


def class_balanced(ctx: Context, x: Tensor, y: Tensor) -> Tensor:
    return ctx.class_weights[y]


def learning_to_reweight(ctx: Context, x: Tensor, y: Tensor) -> Tensor:
    """Ren et al.: ``max(-g, 0)`` normalised to mean 1 (all zero when no example helps validation)."""
    grad = _eps_gradient(ctx, x, y, torch.zeros_like(ctx.class_weights[y]), lambda theta, forward: theta)
    w = (-grad).clamp(min=0)
    total = w.sum()
    return w * len(w) / total if total > 0 else w


def two_component(ctx: Context, x: Tensor, y: Tensor) -> Tensor:
    return ctx.class_weights[y] - ctx.eps_step * two_component_gradient(ctx, x, y)


def lazy_two_component(ctx: Context, x: Tensor, y: Tensor) -> Tensor:
    return ctx.class_weights[y] - ctx.eps_step * lazy_gradient(ctx, x, y)[0]


@dataclass(frozen=True)
class Method:
    """A weighting rule and when it applies.

    ``deferred`` methods train with plain cross-entropy until the re-weighting stage (the reference
    schedule re-weights only in its last stage); the others weigh from the first step.
    """

    weights: Callable[[Context, Tensor, Tensor], Tensor]
    deferred: bool
    needs_val: bool = False
    lazy: bool = False


METHODS = {
    "cross-entropy": Method(cross_entropy, deferred=False),
    "class-balanced": Method(class_balanced, deferred=False),
    "class-balanced-finetune": Method(class_balanced, deferred=True),
    "learning-to-reweight": Method(learning_to_reweight, deferred=False, needs_val=True),
    "two-component": Method(two_component, deferred=True, needs_val=True),
    "lazy-two-component": Method(lazy_two_component, deferred=True, needs_val=True, lazy=True),
}


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ValueError(f"unknown long-tail method {name!r}; choose one of {sorted(METHODS)}")
    return METHODS[name]


def train_step(method: Method, ctx: Context, optimizer: torch.optim.Optimizer, x: Tensor, y: Tensor,
               reweight: bool) -> tuple[Tensor, Tensor]:
    """One real step on ``(1/|B|) Σ w_i CE_i(θ)``; returns (loss, weights), both detached.

    ``reweight=False`` (a deferred method before its stage) trains with w = 1.
    """
    if reweight:
        with frozen_statistics(ctx.model):
            weights = method.weights(ctx, x, y).detach()
    else:
        weights = cross_entropy(ctx, x, y)
    loss = weighted_loss(ctx.model(x), y, weights)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach(), weights
