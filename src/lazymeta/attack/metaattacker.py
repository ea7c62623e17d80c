"""Meta-training of the meta-attacker: one task = one white-box model's set of gradient maps.

The inner loop, tie and outer rule all come from :mod:`lazymeta.algorithms`: ``reptile`` with an
inner Adam (the reference of Du et al. 2020) or the plain-SGD :class:`~lazymeta.student.Student`,
and ``lazy-reptile`` / ``lazy-maml`` with the :class:`~lazymeta.teacher.LazyTeacher` choosing the
leap on the task's query MSE. A task's training loss is the MSE on its support images, its
validation metric the MSE on its query images.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.func import vmap
from tqdm import tqdm

from lazymeta.algorithms import get_algorithm
from lazymeta.attack.config import MetaTrainConfig
from lazymeta.params import Params, detach, functional, params_of
from lazymeta.student import Student, build_student
from lazymeta.teacher import LazyTeacher, Metric

Forward = Callable[[Params, Tensor], Tensor]


def per_image(forward: Forward) -> Forward:
    """``forward`` applied to each image alone, so batch norm sees one image as at attack time."""
    return lambda params, x: vmap(lambda xi: forward(params, xi[None])[0])(x)


def attacker_forward(model: nn.Module) -> Forward:
    """The meta-attacker as ``f(params, images) -> gradient maps``, each image normalised on its own."""
    return per_image(functional(model))


class GradientTask(NamedTuple):
    """One white-box model's images and their std-normalised gradient maps."""

    images: Tensor
    grads: Tensor

    def split(self, support: int, query: int, generator: torch.Generator) -> tuple[Tensor, ...]:
        """Disjoint random (support images, support maps, query images, query maps)."""
        idx = torch.randperm(len(self.images), generator=generator)[:support + query].to(self.images.device)
        s, q = idx[:support], idx[support:]
        return self.images[s], self.grads[s], self.images[q], self.grads[q]


def regression_losses(forward: Forward, sx: Tensor, sg: Tensor, qx: Tensor,
                      qg: Tensor) -> tuple[Callable[[Params], Tensor], Metric]:
    """Support MSE for the student, (query MSE, -query MSE) for the teacher and the outer loss."""

    def train_loss(p: Params) -> Tensor:
        return (forward(p, sx) - sg).pow(2).mean()

    def val_metric(p: Params) -> tuple[Tensor, Tensor]:
        mse = (forward(p, qx) - qg).pow(2).mean()
        return mse, -mse

    return train_loss, val_metric


def _student(s: MetaTrainConfig) -> Student:
    return build_student(s.inner, s.steps, s.inner_lr, s.keep_last)


def _optimizer(s: MetaTrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    if s.meta_optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=s.meta_lr)
    if s.meta_optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=s.meta_lr)
    raise ValueError(f"meta_optimizer must be sgd or adam, got {s.meta_optimizer!r}")


def meta_train(model: nn.Module, tasks: Sequence[GradientTask], settings: MetaTrainConfig,
               generator: torch.Generator, progress: bool = False,
               teacher: LazyTeacher | None = None) -> list[dict[str, float]]:
    """Meta-train ``model`` in place: each iteration adapts to every task once and takes one outer step.

    Returns per-iteration statistics: the mean query MSE of the task models (and γ̂ for lazy runs).
    """
    algorithm = get_algorithm(settings.algorithm)
    student = _student(settings)
    teacher = (teacher or LazyTeacher()) if algorithm.lazy else None
    optimizer = _optimizer(settings, model)
    forward = attacker_forward(model)
    history = []
    for _ in tqdm(range(settings.iterations), desc=f"meta-train {settings.algorithm}", disable=not progress):
        theta = params_of(model)
        total = [torch.zeros_like(p) for p in theta.values()]
        losses, gammas = [], []
        for task in tasks:
            train_loss, val_metric = regression_losses(forward, *task.split(settings.support, settings.query, generator))
            adapted = algorithm.adapt(theta, student, teacher, train_loss, val_metric)
            grads, (loss, _) = algorithm.meta_gradient(theta, adapted, val_metric)
            for t, g in zip(total, grads):
                t.add_(g, alpha=1 / len(tasks))
            losses.append(float(loss))
            if adapted.leap is not None:
                gammas.append(float(adapted.leap.gamma))
        for p, g in zip(theta.values(), total):
            p.grad = g
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        history.append({"query_mse": sum(losses) / len(losses), **({"gamma": sum(gammas) / len(gammas)} if gammas else {})})
    return history


def predict(model: nn.Module, images: Tensor, batch: int = 500) -> Tensor:
    """The (unadapted) meta-attacker's maps, each image normalised on its own as at attack time."""
    forward = attacker_forward(model)
    theta = detach(params_of(model))
    with torch.no_grad():
        return torch.cat([forward(theta, images[lo:lo + batch]) for lo in range(0, len(images), batch)])


def prediction_mse(model: nn.Module, task: GradientTask, batch: int = 500) -> float:
    """MSE of the (unadapted) meta-attacker's maps against a task's true maps."""
    return float((predict(model, task.images, batch) - task.grads).pow(2).mean())
