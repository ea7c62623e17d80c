"""The student: the inner loop of every gradient-based meta-learner.

k plain SGD steps from a start point, keeping only the last b checkpoints. Every step is detached, so
memory does not grow with k, unless the tie asks for the graph (``create_graph``): then the steps stay
differentiable in the start point (second-order MAML, memory linear in k).
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from lazymeta.params import Params, detach


@dataclass(frozen=True)
class Student:
    """``φ_{t+1} = φ_t - lr ∇L_tr(φ_t)`` for ``steps`` steps; returns ``[φ_{k-b+1}, ..., φ_k]``.

    Args:
        steps: k, the number of SGD steps (0 returns the start point).
        lr: the SGD step size.
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
        with torch.enable_grad():
            for _ in range(self.steps):
                phi = self._step(phi, loss_fn, create_graph)
                kept.append(phi)
        return list(kept)

    def _step(self, phi: Params, loss_fn: Callable[[Params], Tensor], create_graph: bool) -> Params:
        if not create_graph:
            phi = {n: p.requires_grad_(True) for n, p in phi.items()}
        grads = torch.autograd.grad(loss_fn(phi), list(phi.values()), create_graph=create_graph)
        if create_graph:
            return {n: p - self.lr * g for (n, p), g in zip(phi.items(), grads)}
        with torch.no_grad():  # one foreach op for all parameters, not two per parameter: fewer GPU launches
            return dict(zip(phi, torch._foreach_add(list(phi.values()), grads, alpha=-self.lr)))
