"""Meta-learners as compositions: a tie (how the task model depends on θ) and an outer rule.

==============  =========  ==========  =============================================
algorithm       tie        outer rule  task model φ_i(θ)
==============  =========  ==========  =============================================
maml            chain      gradient    φ_k(θ) through every student step (2nd order)
fomaml          detached   gradient    θ + stopgrad(φ_k - θ): dφ/dθ = I
reptile         detached   reptile     φ_k
lazy-maml       leap       gradient    θ + γ̂ (Σ α̂_j φ_j - θ): dφ/dθ = (1-γ̂) I
lazy-reptile    leap       reptile     the same leap
==============  =========  ==========  =============================================

The *gradient* rule returns ``∇_θ L_val(φ_i(θ))``; the *reptile* rule returns ``θ - φ_i``. The
learner averages either over the meta-batch and hands it to the meta-optimizer as θ's gradient,
so with SGD(lr=β) the Reptile rules are exactly ``θ ← θ - β/n Σ_i (θ - φ_i)``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from lazymeta.params import Params, detach, sub
from lazymeta.student import Student
from lazymeta.teacher import LazyTeacher, Leap, Metric

TIES = ("chain", "detached", "leap")
OUTER_RULES = ("gradient", "reptile")


class Adapted(NamedTuple):
    """A task model and, for the lazy tie, the teacher's choice."""

    params: Params
    leap: Leap | None


@dataclass(frozen=True)
class Algorithm:
    name: str
    tie: str
    outer: str

    def __post_init__(self) -> None:
        if self.tie not in TIES or self.outer not in OUTER_RULES:
            raise ValueError(f"unknown tie {self.tie!r} or outer rule {self.outer!r}")

    @property
    def lazy(self) -> bool:
        return self.tie == "leap"

    def adapt(self, theta: Params, student: Student, teacher: LazyTeacher | None,
              train_loss: Callable[[Params], Tensor], val_metric: Metric) -> Adapted:
        """Run the student from θ and tie its result back to θ."""
        if self.tie == "leap" and teacher is None:
            raise ValueError(f"{self.name} needs a LazyTeacher")
        checkpoints = student.run(theta, train_loss, create_graph=self.tie == "chain")
        if self.tie == "chain":
            return Adapted(checkpoints[-1], None)
        if self.tie == "detached":
            step = detach(sub(checkpoints[-1], theta))  # φ_k - θ as a constant: dφ/dθ = I
            return Adapted({n: p + step[n] for n, p in theta.items()}, None)
        leap = teacher.choose(theta, checkpoints, val_metric)
        return Adapted(teacher.leap(theta, checkpoints, leap), leap)

    def meta_gradient(self, theta: Params, adapted: Adapted,
                      val_metric: Metric) -> tuple[list[Tensor], tuple[Tensor, Tensor]]:
        """This task's contribution to θ's update and its validation (loss, accuracy), detached; with a
        leading task dimension on θ and the metric, each task's."""
        if self.outer == "reptile":
            if adapted.leap is not None:  # the teacher already scored the chosen leap
                metrics = adapted.leap.loss, adapted.leap.accuracy
            else:
                with torch.no_grad():
                    metrics = val_metric(adapted.params)
            return list(detach(sub(theta, adapted.params)).values()), metrics
        loss, accuracy = val_metric(adapted.params)
        grads = torch.autograd.grad(loss.sum(), list(theta.values()))  # a batch of tasks: one loss each
        return list(grads), (loss.detach(), accuracy.detach())


ALGORITHMS: dict[str, Algorithm] = {
    a.name: a
    for a in (
        Algorithm("maml", tie="chain", outer="gradient"),
        Algorithm("fomaml", tie="detached", outer="gradient"),
        Algorithm("reptile", tie="detached", outer="reptile"),
        Algorithm("lazy-maml", tie="leap", outer="gradient"),
        Algorithm("lazy-reptile", tie="leap", outer="reptile"),
    )
}


def get_algorithm(name: str) -> Algorithm:
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; choose one of {sorted(ALGORITHMS)}")
    return ALGORITHMS[name]
