"""The student: the inner loop of every gradient-based meta-learner.

k plain SGD steps from a start point, keeping only the last b checkpoints. Without
``create_graph`` every step is detached, so memory does not grow with k; with it the steps stay
differentiable in the start point (second-order MAML, memory linear in k).
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from lazymeta.params import Params


@dataclass(frozen=True)
class Student:
    """``φ_{t+1} = φ_t - lr ∇L_tr(φ_t)`` for ``steps`` steps; returns ``[φ_{k-b+1}, ..., φ_k]``.

    Args:
        steps: k, the number of SGD steps (0 returns the start point).
        lr: the SGD step size.
        keep_last: b, how many of the final checkpoints to return (fewer if k + 1 < b).
        create_graph: keep every step differentiable in the start point (second-order MAML).
    """

    steps: int = 10
    lr: float = 0.1
    keep_last: int = 1
    create_graph: bool = False

    def __post_init__(self) -> None:
        if self.steps < 0 or self.keep_last < 1 or self.lr <= 0:
            raise ValueError(f"Student needs steps >= 0, keep_last >= 1 and lr > 0, got {self}")

    def run(self, start: Params, loss_fn: Callable[[Params], Tensor]) -> list[Params]:
        """Run the inner loop on ``loss_fn`` (the task's training loss as a function of the parameters)."""
        phi = start if self.create_graph else {n: p.detach() for n, p in start.items()}
        kept: deque[Params] = deque([phi], maxlen=self.keep_last)
        with torch.enable_grad():
            for _ in range(self.steps):
                phi = self._step(phi, loss_fn)
                kept.append(phi)
        return list(kept)

    def _step(self, phi: Params, loss_fn: Callable[[Params], Tensor]) -> Params:
        if not self.create_graph:
            phi = {n: p.requires_grad_(True) for n, p in phi.items()}
        grads = torch.autograd.grad(loss_fn(phi), list(phi.values()), create_graph=self.create_graph)
        if self.create_graph:
            return {n: p - self.lr * g for (n, p), g in zip(phi.items(), grads)}
        with torch.no_grad():  # one foreach op for all parameters, not two per parameter: fewer GPU launches
            return dict(zip(phi, torch._foreach_add(list(phi.values()), grads, alpha=-self.lr)))
