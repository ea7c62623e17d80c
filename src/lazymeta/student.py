"""Students: the inner loop of every gradient-based meta-learner.

k steps of an inner rule from a start point, keeping only the last b checkpoints. Every step is detached,
so memory does not grow with k, unless the tie asks for the graph (``create_graph``): then the steps stay
differentiable in the start point (second-order MAML, memory linear in k). A student is its update rule:
:class:`Student` (plain SGD, the paper's), :class:`AdamStudent` (the inner Adam of Reptile's and the
meta-attack's reference codes), :class:`ProximalStudent` (iMAML's and Meta-MinibatchProx's proximal inner
problem), :class:`LearnedRateStudent` (Meta-SGD) and :class:`CurvatureStudent` (Meta-Curvature) share the
loop. The last two step with meta-parameters of their own (``meta``), which the learner trains with θ.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from lazymeta.params import Params, detach


@dataclass(frozen=True)
class TrainLoss:
    """A task's training loss as a function of the parameters, with, where the model has them, its exact
    derivatives by other means than autograd, one tensor per parameter in φ's order:

    - ``gradient(φ)``, which graph-free students use instead of building a graph per step;
    - ``differentiable(φ)``, the same gradient as an autograd node whose backward pass is the
      Hessian-vector product: second-order students step with it instead of differentiating autograd's
      backward pass;
    - ``hessian(φ)``, the product ``v -> H(φ) v`` at one point (iMAML's conjugate gradients).

    ``layout(φ)``, where given, is φ with the same values in the memory layout those run fastest on; a
    student applies it once to its start point, and its steps keep that layout."""

    loss: Callable[[Params], Tensor]
    gradient: Callable[[Params], list[Tensor]] | None = None
    layout: Callable[[Params], Params] | None = None
    differentiable: Callable[[Params], list[Tensor]] | None = None
    hessian: Callable[[Params], Callable[[Sequence[Tensor]], list[Tensor]]] | None = None

    def __call__(self, params: Params) -> Tensor:
        return self.loss(params)


@dataclass(frozen=True)
class Student:
    """``φ_{t+1} = φ_t - lr ∇L_tr(φ_t)`` for ``steps`` steps; returns ``[φ_{k-b+1}, ..., φ_k]``.

    Args:
        steps: k, the number of steps (0 returns the start point).
        lr: the step size.
        keep_last: b, how many of the final checkpoints to return (fewer if k + 1 < b).
    """

    steps: int = 10
    lr: float = 0.1
    keep_last: int = 1

    def __post_init__(self) -> None:
        if self.steps < 0 or self.keep_last < 1 or self.lr <= 0:
            raise ValueError(f"the student needs steps >= 0, keep_last >= 1 and lr > 0, got steps={self.steps}, "
                             f"keep_last={self.keep_last}, lr={self.lr}")

    def run(self, start: Params, loss_fn: Callable[[Params], Tensor], create_graph: bool = False,
            meta: Params | None = None) -> list[Params]:
        """Run the inner loop on ``loss_fn`` (the task's training loss as a function of the parameters);
        ``create_graph`` keeps every step differentiable in the start point (second-order MAML) and in
        ``meta``, the rule's own meta-parameters (learned rates, curvature), if it has any. A
        :class:`TrainLoss` with a ``gradient`` (``differentiable`` with ``create_graph``) is stepped with
        it, not with autograd's."""
        phi = start if create_graph else detach(start)
        gradient = getattr(loss_fn, "differentiable" if create_graph else "gradient", None)
        layout = getattr(loss_fn, "layout", None)
        if gradient is not None and layout is not None and self.steps:
            phi = layout(phi)
        kept: deque[Params] = deque([phi], maxlen=self.keep_last)
        state = self.init_state(phi, meta if create_graph or meta is None else detach(meta))
        with torch.enable_grad():
            for t in range(1, self.steps + 1):
                if gradient is not None:
                    grads = gradient(phi)
                else:
                    if not create_graph:
                        phi = {n: p.requires_grad_(True) for n, p in phi.items()}
                    grads = torch.autograd.grad(loss_fn(phi), list(phi.values()), create_graph=create_graph)
                phi = self.update(phi, grads, t, state, create_graph)
                kept.append(phi)
        return list(kept)

    def meta_parameters(self, theta: Params) -> Params:
        """The rule's own meta-parameters for a model with parameters θ, at their initial values (none for SGD)."""
        return {}

    def init_state(self, start: Params, meta: Params | None) -> dict:
        """The rule's state at the start point (none for SGD)."""
        return {}

    def update(self, phi: Params, grads: Sequence[Tensor], t: int, state: dict, create_graph: bool) -> Params:
        """Step t (from 1) of the rule."""
        # one foreach op for all parameters, not two per parameter: fewer GPU launches and Python calls;
        # differentiable where the graph is kept
        with torch.set_grad_enabled(create_graph):
            return dict(zip(phi, torch._foreach_add(list(phi.values()), list(grads), alpha=-self.lr)))


@dataclass(frozen=True)
class AdamStudent(Student):
    """``steps`` Adam steps (Kingma and Ba 2015) from fresh moments: the inner loop of the Reptile and
    meta-attack reference codes (Reptile's runs β1 = 0). First-order only."""

    steps: int = 5
    lr: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8

    def run(self, start: Params, loss_fn: Callable[[Params], Tensor], create_graph: bool = False,
            meta: Params | None = None) -> list[Params]:
        if create_graph:
            raise ValueError("the Adam student is first-order only: use it with reptile, fomaml or the lazy algorithms")
        return super().run(start, loss_fn, meta=meta)

    def init_state(self, start: Params, meta: Params | None) -> dict:
        return {"m": {n: torch.zeros_like(p) for n, p in start.items()},
                "v": {n: torch.zeros_like(p) for n, p in start.items()}}

    def update(self, phi: Params, grads: Sequence[Tensor], t: int, state: dict, create_graph: bool) -> Params:
        b1, b2 = self.betas
        m, v = state["m"], state["v"]
        with torch.no_grad():
            for n, g in zip(phi, grads):
                m[n] = b1 * m[n] + (1 - b1) * g
                v[n] = b2 * v[n] + (1 - b2) * g * g
            return {n: p - self.lr * (m[n] / (1 - b1 ** t)) / ((v[n] / (1 - b2 ** t)).sqrt() + self.eps)
                    for n, p in phi.items()}


@dataclass(frozen=True)
class ProximalStudent(Student):
    """SGD on ``L_tr(φ) + λ/2 ||φ - θ||²``, θ the start point: the proximal inner problem of iMAML
    (Rajeswaran et al. 2019) and Meta-MinibatchProx (Zhou et al. 2019), whose pull toward θ keeps the
    task model near the meta-parameters however long the loop runs."""

    prox_lambda: float = 2.0

    def init_state(self, start: Params, meta: Params | None) -> dict:
        return {"anchor": start}

    def update(self, phi: Params, grads: Sequence[Tensor], t: int, state: dict, create_graph: bool) -> Params:
        anchor = state["anchor"]
        pulled = [g + self.prox_lambda * (p - anchor[n]) for (n, p), g in zip(phi.items(), grads)]
        return super().update(phi, pulled, t, state, create_graph)


@dataclass(frozen=True)
class LearnedRateStudent(Student):
    """``φ ← φ - α ⊙ ∇L_tr(φ)`` with α, one rate per weight, a meta-parameter (Meta-SGD, Li et al. 2017):
    ``meta`` holds ``rate/<name>`` for every parameter."""

    def meta_parameters(self, theta: Params) -> Params:
        """One rate per weight, all starting at the student's ``lr``."""
        return {f"rate/{n}": torch.full_like(p.detach(), self.lr) for n, p in theta.items()}

    def init_state(self, start: Params, meta: Params | None) -> dict:
        return {"rates": [meta[f"rate/{n}"] for n in start]}

    def update(self, phi: Params, grads: Sequence[Tensor], t: int, state: dict, create_graph: bool) -> Params:
        with torch.set_grad_enabled(create_graph):
            return {n: p - a * g for (n, p), a, g in zip(phi.items(), state["rates"], grads)}


_FACTORS = ("out", "in", "kernel")


def _factor_sizes(shape: torch.Size) -> tuple[int, ...]:
    if len(shape) == 1:
        return (shape[0],)
    kernel = shape[2:].numel()
    return (shape[0], shape[1]) + ((kernel,) if kernel > 1 else ())


def curvature_transform(grad: Tensor, factors: Sequence[Tensor]) -> Tensor:
    """``M_o G M_i`` (and the kernel factor) of one parameter's gradient ``G``; the factors and ``grad``
    may carry the same leading (task) dimensions."""
    lead = grad.shape[:factors[0].dim() - 2]
    if grad.dim() - len(lead) == 1:
        return torch.einsum("...ab,...b->...a", factors[0], grad)
    g = grad.reshape(*lead, grad.shape[len(lead)], grad.shape[len(lead) + 1], -1)
    g = torch.einsum("...ab,...bis->...ais", factors[0], g)
    g = torch.einsum("...ais,...ij->...ajs", g, factors[1])
    if len(factors) == 3:
        g = torch.einsum("...ais,...st->...ait", g, factors[2])
    return g.reshape(grad.shape)


@dataclass(frozen=True)
class CurvatureStudent(Student):
    """``φ ← φ - lr · M_o ∇L_tr(φ) M_i`` (Meta-Curvature, Park and Oliva 2019): Kronecker-factored
    curvature matrices, meta-learned with θ, that rotate and scale each parameter's inner gradient;
    ``meta`` holds them."""

    def meta_parameters(self, theta: Params) -> Params:
        """Identity factors at the start (the plain gradient): for a weight of shape (o, i, *kernel) an
        o×o, an i×i and, for a kernel, a (kernel size)² matrix; an n×n matrix for a vector of n."""
        return {f"curvature/{n}/{axis}": torch.eye(size, dtype=p.dtype, device=p.device)
                for n, p in theta.items() for axis, size in zip(_FACTORS, _factor_sizes(p.shape))}

    def init_state(self, start: Params, meta: Params | None) -> dict:
        return {"factors": [[meta[f"curvature/{n}/{a}"] for a in _FACTORS if f"curvature/{n}/{a}" in meta]
                            for n in start]}

    def update(self, phi: Params, grads: Sequence[Tensor], t: int, state: dict, create_graph: bool) -> Params:
        with torch.set_grad_enabled(create_graph):
            return {n: p - self.lr * curvature_transform(g, f)
                    for (n, p), g, f in zip(phi.items(), grads, state["factors"])}


STUDENTS = {"sgd": Student, "adam": AdamStudent}


def build_student(inner: str, steps: int, lr: float, keep_last: int = 1,
                  betas: Sequence[float] = (0.9, 0.999)) -> Student:
    """The student of an inner rule by name: ``sgd`` or ``adam`` (``betas`` for Adam only)."""
    if inner not in STUDENTS:
        raise ValueError(f"unknown inner rule {inner!r}; choose one of {sorted(STUDENTS)}")
    if inner == "adam":
        return AdamStudent(steps, lr, keep_last, tuple(betas))
    return Student(steps, lr, keep_last)
