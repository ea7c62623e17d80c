"""Students: the inner loop of every gradient-based meta-learner.

k steps of an inner rule from a start point, keeping only the last b checkpoints. Every step is detached,
so memory does not grow with k, unless the tie asks for the graph (``create_graph``): then the steps stay
differentiable in the start point (second-order MAML, memory linear in k). A student is its update rule:
:class:`Student` (plain SGD, the paper's) and :class:`AdamStudent` (the inner Adam of Reptile's and the
meta-attack's reference codes) share the loop.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from lazymeta.params import Params, detach


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

    def run(self, start: Params, loss_fn: Callable[[Params], Tensor], create_graph: bool = False) -> list[Params]:
        """Run the inner loop on ``loss_fn`` (the task's training loss as a function of the parameters);
        ``create_graph`` keeps every step differentiable in the start point (second-order MAML)."""
        phi = start if create_graph else detach(start)
        kept: deque[Params] = deque([phi], maxlen=self.keep_last)
        state = self.init_state(phi)
        with torch.enable_grad():
            for t in range(1, self.steps + 1):
                if not create_graph:
                    phi = {n: p.requires_grad_(True) for n, p in phi.items()}
                grads = torch.autograd.grad(loss_fn(phi), list(phi.values()), create_graph=create_graph)
                phi = self.update(phi, grads, t, state, create_graph)
                kept.append(phi)
        return list(kept)

    def init_state(self, phi: Params) -> dict:
        """The rule's state at the start point (none for SGD)."""
        return {}

    def update(self, phi: Params, grads: Sequence[Tensor], t: int, state: dict, create_graph: bool) -> Params:
        """Step t (from 1) of the rule."""
        if create_graph:
            return {n: p - self.lr * g for (n, p), g in zip(phi.items(), grads)}
        with torch.no_grad():  # one foreach op for all parameters, not two per parameter: fewer GPU launches
            return dict(zip(phi, torch._foreach_add(list(phi.values()), grads, alpha=-self.lr)))


@dataclass(frozen=True)
class AdamStudent(Student):
    """``steps`` Adam steps (Kingma and Ba 2015) from fresh moments: the inner loop of the Reptile and
    meta-attack reference codes (Reptile's runs β1 = 0). First-order only."""

    steps: int = 5
    lr: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8

    def run(self, start: Params, loss_fn: Callable[[Params], Tensor], create_graph: bool = False) -> list[Params]:
        if create_graph:
            raise ValueError("the Adam student is first-order only: use it with reptile, fomaml or the lazy algorithms")
        return super().run(start, loss_fn)

    def init_state(self, phi: Params) -> dict:
        return {"m": {n: torch.zeros_like(p) for n, p in phi.items()},
                "v": {n: torch.zeros_like(p) for n, p in phi.items()}}

    def update(self, phi: Params, grads: Sequence[Tensor], t: int, state: dict, create_graph: bool) -> Params:
        b1, b2 = self.betas
        m, v = state["m"], state["v"]
        with torch.no_grad():
            for n, g in zip(phi, grads):
                m[n] = b1 * m[n] + (1 - b1) * g
                v[n] = b2 * v[n] + (1 - b2) * g * g
            return {n: p - self.lr * (m[n] / (1 - b1 ** t)) / ((v[n] / (1 - b2 ** t)).sqrt() + self.eps)
                    for n, p in phi.items()}


STUDENTS = {"sgd": Student, "adam": AdamStudent}


def build_student(inner: str, steps: int, lr: float, keep_last: int = 1,
                  betas: Sequence[float] = (0.9, 0.999)) -> Student:
    """The student of an inner rule by name: ``sgd`` or ``adam`` (``betas`` for Adam only)."""
    if inner not in STUDENTS:
        raise ValueError(f"unknown inner rule {inner!r}; choose one of {sorted(STUDENTS)}")
    if inner == "adam":
        return AdamStudent(steps, lr, keep_last, tuple(betas))
    return Student(steps, lr, keep_last)
