"""Per-example loss weights of the long-tail methods: one small class per method, one shared real step.

A method weighs a batch (``weigh(ctx, x, y)``: one detached weight per example, and the magnitudes it logs),
says when it applies (class flags) and holds what it learns (``state_dict``: only Meta-Weight-Net learns
anything). The real step is always ``θ ← θ - η ∇_θ (1/|B|) Σ_i w_i CE_i(θ)`` with the run's optimizer
(:func:`train_step`). The meta-learned methods get w from a look-ahead on the balanced validation batch,
``θ̃ = θ - η̃ ∇_θ (1/|B|) Σ_i b_i CE_i(θ)`` with η̃ = ``ctx.lr`` on the mean loss:

- learning to reweight (Ren et al. 2018): ``w ∝ max(-∂L_val(θ̃(ε))/∂ε, 0)`` at ε = 0 (b = ε), normalised to
  mean 1 (Ren's sum-to-1 weights on a summed loss are this on a mean loss);
- two-component weighting (Jamal et al. 2020): ``w = w_y + ε``, ``ε = -τ ∂L_val(θ̃(ε))/∂ε`` at ε = 0,
  b = w_y + ε;
- lazy two-component weighting (the paper's Algorithm 2): the student runs k SGD steps on L_B from θ̃(0),
  the lazy teacher picks the leap rate γ by validation accuracy, and
  ``ε = -τ ∂L_val(θ̃(ε) + γ (φ_k - θ̃(ε)))/∂ε`` (φ_k a constant: the gradient flows through θ̃ only, times 1 - γ);
- Meta-Weight-Net (Shu et al. 2019): ``w_i = |B| V(l_i; ψ) / Σ_j V(l_j; ψ)`` with V a 1-hidden-layer MLP
  from an example's loss to (0, 1); ψ takes one step of its own optimizer on ``∂L_val(θ̃(ψ))/∂ψ`` (b = w(ψ)),
  then weighs the batch. The weights are normalised to mean 1 as in the authors' class-imbalance code.

Batch norm: look-aheads, student steps and candidate scoring normalise with their own batch statistics and
leave the running statistics alone (:func:`frozen_statistics`); only the real step updates them, so a
look-ahead never leaks the validation batch into the model that is tested.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lazymeta.longtail.config import MethodConfig, MetaWeightNetConfig
from lazymeta.params import Params, flat, functional, sub
from lazymeta.student import Student
from lazymeta.teacher import LazyTeacher

Forward = Callable[[Params, Tensor], Tensor]
# What the meta-learned methods log per batch (0-d tensors), averaged per epoch by the training loop.
MAGNITUDES = ("lookahead_step", "student_displacement", "eps_relative", "gamma")


@dataclass(frozen=True)
class Context:
    """What a method may look at when it weighs one training batch.

    Args:
        model: the network being trained (its current parameters are θ).
        class_weights: the class-balanced weight w_c of every class (C,).
        val: a balanced validation batch ``(x, y)``; None for methods that need none.
        lr: η̃, the look-ahead's step on the mean batch loss.
        student: the lazy method's student (k steps of L_B).
        teacher: the lazy method's teacher (γ grid, selection by validation accuracy).
    """

    model: nn.Module
    class_weights: Tensor
    val: tuple[Tensor, Tensor] | None = None
    lr: float = 0.1
    student: Student | None = None
    teacher: LazyTeacher | None = None


@dataclass(frozen=True)
class Weighing:
    """One batch's weights (detached) and the magnitudes of :data:`MAGNITUDES` the method measured."""

    weights: Tensor
    magnitudes: dict[str, Tensor] = field(default_factory=dict)


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


def look_ahead(theta: Params, losses: Tensor, weights: Tensor, lr: float) -> Params:
    """``θ̃ = θ - η̃ ∇_θ (1/|B|) Σ_i w_i l_i(θ)`` from the per-example losses at θ, differentiable in
    ``weights`` (and in θ) for the meta-gradient."""
    grads = torch.autograd.grad((weights * losses).mean(), list(theta.values()), create_graph=True)
    return {n: p - lr * g for (n, p), g in zip(theta.items(), grads)}


def distance(a: Params, b: Params) -> Tensor:
    """``‖a - b‖``, the Euclidean norm over all parameters (detached)."""
    with torch.no_grad():
        return flat(sub(a, b)).norm()


def val_metric(forward: Forward, val: tuple[Tensor, Tensor]) -> Callable[[Params], tuple[Tensor, Tensor]]:
    """``params -> (mean CE, accuracy)`` on the validation batch (the teacher's metric)."""
    x, y = val

    def metric(params: Params) -> tuple[Tensor, Tensor]:
        logits = forward(params, x)
        return F.cross_entropy(logits, y), (logits.argmax(-1) == y).float().mean()

    return metric


# leap(θ̃, forward, magnitudes) -> the parameters the validation loss is taken at (logging into magnitudes)
LeapFn = Callable[[Params, Forward, dict], Params]


def _eps_gradient(ctx: Context, x: Tensor, y: Tensor, base: Tensor, leap: LeapFn) -> tuple[Tensor, dict]:
    """``∂L_val(leap(θ̃(ε)))/∂ε`` at ε = 0, ``θ̃(ε)`` the look-ahead on ``(base + ε) · CE``; and the magnitudes
    (‖θ̃ - θ‖, and what ``leap`` logs)."""
    forward = functional(ctx.model)
    eps = torch.zeros(len(y), dtype=base.dtype, device=base.device, requires_grad=True)
    theta = leaf_params(ctx.model)
    tilde = look_ahead(theta, F.cross_entropy(forward(theta, x), y, reduction="none"), base + eps, ctx.lr)
    magnitudes = {"lookahead_step": distance(tilde, theta)}
    loss, _ = val_metric(forward, ctx.val)(leap(tilde, forward, magnitudes))
    (grad,) = torch.autograd.grad(loss, eps)
    return grad, magnitudes


def _no_leap(theta: Params, forward: Forward, magnitudes: dict) -> Params:
    return theta


def two_component_gradient(ctx: Context, x: Tensor, y: Tensor) -> tuple[Tensor, dict]:
    """``∂L_val(θ̃(ε))/∂ε`` at ε = 0 (Jamal et al.: one look-ahead, no student), and the magnitudes."""
    return _eps_gradient(ctx, x, y, ctx.class_weights[y], _no_leap)


def lazy_gradient(ctx: Context, x: Tensor, y: Tensor) -> tuple[Tensor, dict]:
    """``∂L_val(θ̃(ε) + γ (φ_k - θ̃(ε)))/∂ε`` at ε = 0, and the magnitudes (with ‖φ_k - θ̃‖ and the chosen γ).

    The student starts from θ̃(0) (detached) and takes k steps on ``L_B(·, 0)``; the teacher scores every γ
    on the validation batch; the leap is differentiable in θ̃(ε) only.
    """
    base = ctx.class_weights[y]

    def leap(theta: Params, forward: Forward, magnitudes: dict) -> Params:
        checkpoints = ctx.student.run(theta, lambda phi: weighted_loss(forward(phi, x), y, base))
        choice = ctx.teacher.choose(theta, checkpoints, val_metric(forward, ctx.val))
        magnitudes.update(student_displacement=distance(checkpoints[-1], theta), gamma=choice.gamma.detach())
        return ctx.teacher.leap(theta, checkpoints, choice)

    return _eps_gradient(ctx, x, y, base, leap)


class Method:
    """A weighting rule, when it applies, and what it learns.

    ``deferred`` methods train with plain cross-entropy until the re-weighting stage (the reference schedule
    re-weights only in its last stage); the others weigh from the first step. ``summed_lookahead``: the
    method's reference code takes its look-ahead on the summed batch loss (the default η̃ is then |B| times
    the current rate on our mean loss).
    """

    deferred: ClassVar[bool] = False
    needs_val: ClassVar[bool] = False
    lazy: ClassVar[bool] = False
    summed_lookahead: ClassVar[bool] = False

    @classmethod
    def build(cls, config: MethodConfig, device: torch.device | None = None) -> Method:
        return cls()

    def weigh(self, ctx: Context, x: Tensor, y: Tensor) -> Weighing:
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Stateless methods have nothing to restore."""


class CrossEntropy(Method):
    def weigh(self, ctx: Context, x: Tensor, y: Tensor) -> Weighing:
        return Weighing(torch.ones_like(ctx.class_weights[y]))


class ClassBalanced(Method):
    def weigh(self, ctx: Context, x: Tensor, y: Tensor) -> Weighing:
        return Weighing(ctx.class_weights[y])


class ClassBalancedFinetune(ClassBalanced):
    deferred = True


class LearningToReweight(Method):
    """Ren et al.: ``max(-g, 0)`` normalised to mean 1 (all zero when no example helps validation)."""

    needs_val = True

    def weigh(self, ctx: Context, x: Tensor, y: Tensor) -> Weighing:
        grad, _ = _eps_gradient(ctx, x, y, torch.zeros_like(ctx.class_weights[y]), _no_leap)
        w = (-grad).clamp(min=0)
        total = w.sum()
        return Weighing(w * len(w) / total if total > 0 else w)


class TwoComponent(Method):
    """``w_y + ε`` with ``ε = -τ`` times the ε-gradient of :meth:`gradient`."""

    deferred = needs_val = summed_lookahead = True

    def __init__(self, eps_step: float):
        self.eps_step = eps_step

    @classmethod
    def build(cls, config: MethodConfig, device: torch.device | None = None) -> Method:
        return cls(config.eps_step)

    def gradient(self, ctx: Context, x: Tensor, y: Tensor) -> tuple[Tensor, dict]:
        return two_component_gradient(ctx, x, y)

    def weigh(self, ctx: Context, x: Tensor, y: Tensor) -> Weighing:
        grad, magnitudes = self.gradient(ctx, x, y)
        base = ctx.class_weights[y]
        eps = -self.eps_step * grad
        magnitudes["eps_relative"] = eps.norm() / base.norm()
        return Weighing(base + eps, magnitudes)


class LazyTwoComponent(TwoComponent):
    lazy = True

    def gradient(self, ctx: Context, x: Tensor, y: Tensor) -> tuple[Tensor, dict]:
        return lazy_gradient(ctx, x, y)


class WeightNet(nn.Module):
    """V(l; ψ): an example's loss -> its weight in (0, 1), through one hidden ReLU layer (Shu et al.)."""

    def __init__(self, hidden: int = 100):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(1, hidden), nn.ReLU(), nn.Linear(hidden, 1), nn.Sigmoid())

    def forward(self, losses: Tensor) -> Tensor:
        return self.layers(losses.unsqueeze(-1)).squeeze(-1)


class MetaWeightNet(Method):
    """Meta-Weight-Net: the weighting network V and its optimizer are the method's state (checkpointed)."""

    needs_val = True

    def __init__(self, config: MetaWeightNetConfig, device: torch.device | None = None,
                 dtype: torch.dtype = torch.float32):
        self.net = WeightNet(config.hidden).to(device, dtype)
        if config.optimizer == "adam":
            self.optimizer = torch.optim.Adam(self.net.parameters(), config.lr, weight_decay=config.weight_decay)
        else:
            self.optimizer = torch.optim.SGD(self.net.parameters(), config.lr, momentum=config.momentum,
                                             nesterov=config.momentum > 0, weight_decay=config.weight_decay)

    @classmethod
    def build(cls, config: MethodConfig, device: torch.device | None = None) -> Method:
        return cls(config.mwn, device)

    def weights_of(self, losses: Tensor) -> Tensor:
        """``|B| V(l_i) / Σ_j V(l_j)``: V sees the loss values only (no gradient into θ through its input)."""
        v = self.net(losses.detach())
        return v * len(v) / v.sum()

    def meta_gradient(self, ctx: Context, x: Tensor, y: Tensor) -> tuple[list[Tensor], Tensor, dict]:
        """``∂L_val(θ̃(ψ))/∂ψ`` (one tensor per parameter of V), the per-example losses at θ, the magnitudes."""
        forward = functional(ctx.model)
        theta = leaf_params(ctx.model)
        losses = F.cross_entropy(forward(theta, x), y, reduction="none")
        tilde = look_ahead(theta, losses, self.weights_of(losses), ctx.lr)
        loss, _ = val_metric(forward, ctx.val)(tilde)
        grads = torch.autograd.grad(loss, list(self.net.parameters()))
        return list(grads), losses.detach(), {"lookahead_step": distance(tilde, theta)}

    def weigh(self, ctx: Context, x: Tensor, y: Tensor) -> Weighing:
        grads, losses, magnitudes = self.meta_gradient(ctx, x, y)
        self.optimizer.zero_grad(set_to_none=True)
        for p, g in zip(self.net.parameters(), grads):
            p.grad = g
        self.optimizer.step()
        with torch.no_grad():
            return Weighing(self.weights_of(losses), magnitudes)

    def state_dict(self) -> dict:
        return {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])


METHODS: dict[str, type[Method]] = {
    "cross-entropy": CrossEntropy,
    "class-balanced": ClassBalanced,
    "class-balanced-finetune": ClassBalancedFinetune,
    "learning-to-reweight": LearningToReweight,
    "meta-weight-net": MetaWeightNet,
    "two-component": TwoComponent,
    "lazy-two-component": LazyTwoComponent,
}


def build_method(config: MethodConfig, device: torch.device | None = None) -> Method:
    """A fresh method of ``config.name`` (Meta-Weight-Net's network is initialised from the global seed)."""
    if config.name not in METHODS:
        raise ValueError(f"method.name: unknown long-tail method {config.name!r}; choose one of {sorted(METHODS)}")
    return METHODS[config.name].build(config, device)


def train_step(method: Method, ctx: Context, optimizer: torch.optim.Optimizer, x: Tensor, y: Tensor,
               reweight: bool) -> tuple[Tensor, Weighing]:
    """One real step on ``(1/|B|) Σ w_i CE_i(θ)``; returns the (detached) loss and the weighing.

    ``reweight=False`` (a deferred method before its stage) trains with w = 1.
    """
    if reweight:
        with frozen_statistics(ctx.model):
            weighing = method.weigh(ctx, x, y)
    else:
        weighing = CrossEntropy().weigh(ctx, x, y)
    weights = weighing.weights.detach()
    loss = weighted_loss(ctx.model(x), y, weights)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach(), Weighing(weights, weighing.magnitudes)
