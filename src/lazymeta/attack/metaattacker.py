"""Meta-training of the meta-attacker: one task = one white-box model's set of gradient maps.

The meta-attacker trains through :class:`~lazymeta.learner.MetaLearner` with the :class:`GradientRegression`
objective: ``reptile`` with an inner Adam (the reference of Du et al. 2020) or the plain-SGD student, and
``lazy-reptile`` / ``lazy-maml`` with the lazy teacher choosing the leap on the task's query MSE. A task's
training loss is the MSE on its support images, its validation metric the MSE on its query images.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.func import vmap
from tqdm import tqdm

from lazymeta.attack.config import MetaTrainConfig
from lazymeta.learner import MetaLearner, Task, TaskLosses
from lazymeta.params import Params, detach, functional, params_of
from lazymeta.student import build_student
from lazymeta.teacher import LazyTeacher

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

    def split(self, support: int, query: int, generator: torch.Generator) -> Task:
        """Disjoint random support and query (images, maps) as a learner's task."""
        idx = torch.randperm(len(self.images), generator=generator)[:support + query].to(self.images.device)
        s, q = idx[:support], idx[support:]
        return Task(self.images[s], self.grads[s], self.images[q], self.grads[q])


@dataclass(frozen=True)
class GradientRegression:
    """The meta-attacker's objective: the MSE of its maps (each image through the network alone) against a
    task's true maps; the support MSE trains the student, (query MSE, −query MSE) is the teacher's and the
    outer loss's metric."""

    def losses(self, forward: Forward, task: Task) -> TaskLosses:
        mse, metric = _regression(forward)
        return TaskLosses(lambda p: mse(p, task.train_x, task.train_y), lambda p: metric(p, task.val_x, task.val_y))

    def batched_losses(self, forward: Forward, tasks: Task) -> TaskLosses:
        mse, metric = _regression(forward)
        return TaskLosses(lambda p: vmap(mse)(p, tasks.train_x, tasks.train_y).sum(),
                          lambda p: vmap(metric)(p, tasks.val_x, tasks.val_y))


def _regression(forward: Forward) -> tuple[Callable[[Params, Tensor, Tensor], Tensor],
                                            Callable[[Params, Tensor, Tensor], tuple[Tensor, Tensor]]]:
    """MSE and the (MSE, −MSE) metric of one parameter set's maps on one batch."""
    one = per_image(forward)

    def mse(p: Params, x: Tensor, g: Tensor) -> Tensor:
        return (one(p, x) - g).pow(2).mean()

    def metric(p: Params, x: Tensor, g: Tensor) -> tuple[Tensor, Tensor]:
        m = mse(p, x, g)
        return m, -m

    return mse, metric


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
    student = build_student(settings.inner, settings.steps, settings.inner_lr, settings.keep_last)
    learner = MetaLearner(model, settings.algorithm, student, teacher, _optimizer(settings, model),
                          objective=GradientRegression())
    history = []
    for _ in tqdm(range(settings.iterations), desc=f"meta-train {settings.algorithm}", disable=not progress):
        stats = learner.meta_step([task.split(settings.support, settings.query, generator) for task in tasks])
        history.append({"query_mse": stats["loss"], **({"gamma": stats["gamma"]} if "gamma" in stats else {})})
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
