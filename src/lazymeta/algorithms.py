"""Meta-learners as compositions: a student (inner rule), a tie (how the task model depends on the
meta-parameters) and an outer rule (what each task contributes to their update).

===================  ========  ==========================  ==========  =========================================
algorithm            tie       outer rule                  student     task model φ_i(θ)
===================  ========  ==========================  ==========  =========================================
maml                 chain     gradient                    configured  φ_k(θ) through every student step (2nd order)
fomaml               detached  gradient                    configured  θ + stopgrad(φ_k - θ): dφ/dθ = I
reptile              detached  reptile                     configured  φ_k
lazy-maml            leap      gradient                    configured  θ + γ̂ (Σ α̂_j φ_j - θ): dφ/dθ = (1-γ̂) I
lazy-reptile         leap      reptile                     configured  the same leap
imaml                implicit  gradient                    proximal    φ* of the proximal problem: dφ/dθ = (I + H/λ)⁻¹
meta-sgd             chain     gradient                    rates       φ_k(θ, α), α learned per weight
minibatchprox        detached  reptile                     proximal    φ* of the proximal problem
taml                 chain     gradient + entropy          configured  as maml, plus θ's prediction entropy
meta-curvature       chain     gradient                    curvature   φ_k(θ, M), M Kronecker-factored curvature
lazy-taml            leap      gradient + entropy          configured  the leap, plus θ's prediction entropy
lazy-minibatchprox   leap      reptile                     proximal    the leap toward the proximal student
===================  ========  ==========================  ==========  =========================================

The *gradient* rule returns the gradient of ``L_val(φ_i)`` with respect to the meta-parameters (θ and the
student's own: learned rates, curvature); the *reptile* rule returns ``θ - φ_i``. The learner averages
either over the meta-batch and hands it to the meta-optimizer as their gradient, so with SGD(lr=β) the
Reptile rules are exactly ``θ ← θ - β/n Σ_i (θ - φ_i)``. A new algorithm is a new row: a combination of
these pieces, plus at most one new piece behind the :class:`Tie`, :class:`OuterRule` or
:class:`~lazymeta.student.Student` interface.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple, Protocol

import torch
from torch import Tensor

from lazymeta.params import Params, detach, flat, scaled, sub, unflat
from lazymeta.student import CurvatureStudent, LearnedRateStudent, ProximalStudent, Student
from lazymeta.teacher import LazyTeacher, Leap, Metric

# entropy(params) -> the mean entropy of the model's predictions on the task's D_tr (TAML's term); for a
# batch of tasks whose parameters carry a leading task dimension, one per task.
Entropy = Callable[[Params], Tensor]


class Adapted(NamedTuple):
    """A task model; for the lazy tie, the teacher's choice; ``vjp``, where the tie knows dφ/dθ without the
    graph (every tie but the chain): the gradient with respect to θ of a function of φ, from its gradient
    with respect to φ."""

    params: Params
    leap: Leap | None
    vjp: Callable[[Sequence[Tensor]], list[Tensor]] | None = None


class Tie(Protocol):
    """How the task model depends on the meta-parameters."""

    name: ClassVar[str]
    second_order: ClassVar[bool]  # keeps the student's autograd graph (memory linear in k)

    def adapt(self, theta: Params, meta: Params, student: Student, teacher: LazyTeacher | None,
              train_loss: Callable[[Params], Tensor], val_metric: Metric) -> Adapted: ...


class OuterRule(Protocol):
    """What one task contributes to the update of the meta-parameters."""

    name: ClassVar[str]

    def contribution(self, theta: Params, meta: Params, adapted: Adapted, val_metric: Metric,
                     entropy: Entropy | None) -> tuple[list[Tensor], tuple[Tensor, Tensor]]: ...


@dataclass(frozen=True)
class Chain:
    """φ_k(θ) through every student step: exact, second order."""

    name: ClassVar[str] = "chain"
    second_order: ClassVar[bool] = True

    def adapt(self, theta, meta, student, teacher, train_loss, val_metric) -> Adapted:
        return Adapted(student.run(theta, train_loss, create_graph=True, meta=meta)[-1], None)


@dataclass(frozen=True)
class Detached:
    """``θ + stopgrad(φ_k - θ)``: dφ/dθ = I (first-order MAML, Reptile)."""

    name: ClassVar[str] = "detached"
    second_order: ClassVar[bool] = False

    def adapt(self, theta, meta, student, teacher, train_loss, val_metric) -> Adapted:
        checkpoints = student.run(theta, train_loss, meta=meta)
        step = detach(sub(checkpoints[-1], theta))  # φ_k - θ as a constant: dφ/dθ = I
        return Adapted({n: p + step[n] for n, p in theta.items()}, None, list)  # vjp: the identity


@dataclass(frozen=True)
class LeapTie:
    """The lazy teacher's leap toward the student's last checkpoints: dφ/dθ = (1 - γ̂) I."""

    name: ClassVar[str] = "leap"
    second_order: ClassVar[bool] = False

    def adapt(self, theta, meta, student, teacher, train_loss, val_metric) -> Adapted:
        if teacher is None:
            raise ValueError("the leap tie needs a LazyTeacher")
        checkpoints = student.run(theta, train_loss, meta=meta)
        leap = teacher.choose(theta, checkpoints, val_metric)
        weight = teacher.theta_weight(leap.gamma)
        return Adapted(teacher.leap(theta, checkpoints, leap), leap, lambda grads: scaled(grads, weight))


@dataclass(frozen=True)
class Implicit:
    """iMAML's implicit tie (Rajeswaran et al. 2019): the proximal student's solution φ* satisfies
    ``∇L_tr(φ*) + λ(φ* - θ) = 0``, so ``dφ*/dθ = (I + H/λ)⁻¹`` with H the Hessian of L_tr at φ*. A
    gradient through it is ``cg_steps`` of conjugate gradients on Hessian-vector products, at memory
    independent of k. ``cg_damping`` δ adds δI to H in the solve, which keeps CG stable where H is
    indefinite (non-convex losses)."""

    name: ClassVar[str] = "implicit"
    second_order: ClassVar[bool] = False
    cg_steps: int = 5
    cg_damping: float = 1.0

    def __post_init__(self) -> None:
        if self.cg_steps < 1 or self.cg_damping < 0:
            raise ValueError(f"the implicit tie needs cg_steps >= 1 and cg_damping >= 0, got cg_steps={self.cg_steps}, "
                             f"cg_damping={self.cg_damping}")

    def adapt(self, theta, meta, student, teacher, train_loss, val_metric) -> Adapted:
        if not isinstance(student, ProximalStudent):
            raise ValueError(f"the implicit tie solves a proximal inner problem: it needs a ProximalStudent, "
                             f"got {type(student).__name__}")
        phi = {n: p.requires_grad_(True) for n, p in student.run(theta, train_loss, meta=meta)[-1].items()}
        lam, damping = student.prox_lambda, self.cg_damping

        def vjp(grads: Sequence[Tensor]) -> list[Tensor]:
            with torch.enable_grad():
                hessian = _hessian_at(train_loss, phi)

                def system(v: Tensor) -> Tensor:  # (I + (H + δI)/λ) v
                    return v + (flat(dict(zip(phi, hessian(list(unflat(v, phi).values()))))) + damping * v) / lam

                solution = conjugate_gradient(system, flat(dict(zip(phi, grads))).detach(), self.cg_steps)
            return [g.detach() for g in unflat(solution, phi).values()]

        return Adapted(phi, None, vjp)


def _hessian_at(train_loss: Callable[[Params], Tensor], phi: Params) -> Callable[[Sequence[Tensor]], list[Tensor]]:
    """``v -> H(φ) v`` of the training loss: the model's own product where the loss carries one
    (:class:`~lazymeta.student.TrainLoss`), else autograd's double backward."""
    own = getattr(train_loss, "hessian", None)
    if own is not None:
        return own(detach(phi))
    first = torch.autograd.grad(train_loss(phi), list(phi.values()), create_graph=True)
    return lambda v: list(torch.autograd.grad(first, list(phi.values()), list(v), retain_graph=True))


def conjugate_gradient(system: Callable[[Tensor], Tensor], b: Tensor, steps: int) -> Tensor:
    """``steps`` iterations of conjugate gradients for ``A x = b`` from x = 0, A symmetric positive
    definite and given by its product ``system(v) = A v``."""
    x, r = torch.zeros_like(b), b.clone()
    p, rr = r.clone(), r @ r
    for _ in range(steps):
        if rr == 0:
            break
        ap = system(p)
        step = rr / (p @ ap)
        x, r = x + step * p, r - step * ap
        rr, previous = r @ r, rr
        p = r + (rr / previous) * p
    return x


@dataclass(frozen=True)
class GradientRule:
    """The gradient of the task's meta-objective with respect to θ and the student's meta-parameters:
    ``L_val(φ)``, and with TAML's entropy terms (Jamal and Qi 2019) ``L_val(φ) - λ_e H(f_θ) +
    λ_r (H(f_φ) - H(f_θ))``: H the mean entropy of the predictions on D_tr, high before adaptation (no
    bias toward any class) and, with the reduction term, lower after it."""

    name: ClassVar[str] = "gradient"
    entropy_weight: float = 0.0
    reduction_weight: float = 0.0

    def contribution(self, theta, meta, adapted, val_metric, entropy) -> tuple[list[Tensor], tuple[Tensor, Tensor]]:
        entropy_terms = bool(self.entropy_weight or self.reduction_weight)
        if entropy_terms and entropy is None:
            raise ValueError("the entropy terms need the task's prediction entropy (entropy=...)")
        wrt = [*theta.values(), *meta.values()]
        manual = getattr(val_metric, "value_and_gradient", None)
        if manual is not None and not entropy_terms:  # ∇_φ L_val without a graph of the validation pass
            grads_phi, loss, accuracy = manual(detach(adapted.params))
            if adapted.vjp is not None:  # nor of the tie
                grads = [*adapted.vjp(grads_phi), *[None] * len(meta)]
            else:  # back through the student's graph (the chain)
                grads = list(torch.autograd.grad(list(adapted.params.values()), wrt, grads_phi, allow_unused=True))
        else:
            grads, loss, accuracy = self._by_autograd(theta, meta, adapted, val_metric, entropy, wrt)
        return [torch.zeros_like(p) if g is None else g for p, g in zip(wrt, grads)], (loss.detach(), accuracy.detach())

    def _by_autograd(self, theta, meta, adapted, val_metric, entropy, wrt) -> tuple[list[Tensor | None], Tensor, Tensor]:
        """The gradients (None where a meta-parameter gets none), the loss and the accuracy, with the
        validation pass (and the entropy terms) in autograd."""
        loss, accuracy = val_metric(adapted.params)
        objective = loss.sum()  # a batch of tasks: one loss each
        before = None
        if self.entropy_weight or self.reduction_weight:
            objective = objective + self.reduction_weight * entropy(adapted.params).sum()
            before = -(self.entropy_weight + self.reduction_weight) * entropy(theta).sum()
        if adapted.vjp is None:
            total = objective if before is None else objective + before
            return list(torch.autograd.grad(total, wrt, allow_unused=bool(meta))), loss, accuracy
        grads = adapted.vjp(torch.autograd.grad(objective, list(adapted.params.values())))
        if before is not None:
            grads = [g + d for g, d in zip(grads, torch.autograd.grad(before, list(theta.values())))]
        return [*grads, *[None] * len(meta)], loss, accuracy


@dataclass(frozen=True)
class ReptileRule:
    """``θ - φ``: the task model is a target θ moves toward (Reptile, Meta-MinibatchProx)."""

    name: ClassVar[str] = "reptile"

    def contribution(self, theta, meta, adapted, val_metric, entropy) -> tuple[list[Tensor], tuple[Tensor, Tensor]]:
        if adapted.leap is not None:  # the teacher already scored the chosen leap
            metrics = adapted.leap.loss, adapted.leap.accuracy
        else:
            with torch.no_grad():
                metrics = val_metric(adapted.params)
        return [*detach(sub(theta, adapted.params)).values(), *(torch.zeros_like(p) for p in meta.values())], metrics


@dataclass(frozen=True)
class Algorithm:
    """A named combination. ``inner``: the student rule the algorithm needs (its steps, lr and b come from
    the configured student); None uses the configured student (SGD or Adam) as it is."""

    name: str
    tie: Tie
    outer: OuterRule
    inner: Student | None = None
    batchable: bool = field(default=True, compare=False)  # False: tasks run one at a time (the CG solve is per task)

    @property
    def lazy(self) -> bool:
        return isinstance(self.tie, LeapTie)

    @property
    def second_order(self) -> bool:
        return self.tie.second_order

    @property
    def reptile_like(self) -> bool:
        return isinstance(self.outer, ReptileRule)

    def options(self) -> dict[str, Any]:
        """The algorithm's own settings (beyond k, the inner lr and b) and their defaults, the papers'."""
        base = {f.name for f in dataclasses.fields(Student)}
        return {f.name: getattr(piece, f.name) for piece in (self.tie, self.outer, self.inner)
                if dataclasses.is_dataclass(piece) for f in dataclasses.fields(piece) if f.name not in base}

    def configured(self, **options: Any) -> Algorithm:
        """The same combination with some of :meth:`options` changed."""
        unknown = sorted(set(options) - set(self.options()))
        if unknown:
            raise ValueError(f"{self.name} has no setting {', '.join(unknown)}; its settings: {sorted(self.options())}")

        def replaced(piece):
            mine = {k: v for k, v in options.items() if dataclasses.is_dataclass(piece)
                    and k in {f.name for f in dataclasses.fields(piece)}}
            return dataclasses.replace(piece, **mine) if mine else piece

        return dataclasses.replace(self, tie=replaced(self.tie), outer=replaced(self.outer), inner=replaced(self.inner))

    def student(self, configured: Student) -> Student:
        """The student this algorithm runs, from the configured one: its own rule with the configured k,
        lr and b (a student of that rule is used as it is; another rule than plain SGD is refused)."""
        if self.inner is None or isinstance(configured, type(self.inner)):
            return configured
        if type(configured) is not Student:
            raise ValueError(f"{self.name} runs its own inner rule ({type(self.inner).__name__}); it cannot run "
                             f"a {type(configured).__name__}: use the plain SGD student")
        return dataclasses.replace(self.inner, steps=configured.steps, lr=configured.lr,
                                   keep_last=configured.keep_last)

    def adapt(self, theta: Params, student: Student, teacher: LazyTeacher | None,
              train_loss: Callable[[Params], Tensor], val_metric: Metric, meta: Params | None = None) -> Adapted:
        """Run the student from θ (with its meta-parameters ``meta``) and tie its result back to them."""
        return self.tie.adapt(theta, meta or {}, student, teacher, train_loss, val_metric)

    def meta_gradient(self, theta: Params, adapted: Adapted, val_metric: Metric, meta: Params | None = None,
                      entropy: Entropy | None = None) -> tuple[list[Tensor], tuple[Tensor, Tensor]]:
        """This task's contribution to the update of θ and then of ``meta`` (in their order), and its
        validation (loss, accuracy), detached; with a leading task dimension on θ and the metric, each task's."""
        return self.outer.contribution(theta, meta or {}, adapted, val_metric, entropy)


# The papers' defaults: iMAML's λ = 2, 5 CG steps, damping 1 (aravindr93/imaml_dev, Omniglot); TAML's
# entropy weight 1 with the reduction term off; Meta-SGD's rates and Meta-Curvature's identity factors
# start at the plain student's rule.
_PROXIMAL = ProximalStudent(prox_lambda=2.0)
_TAML = GradientRule(entropy_weight=1.0)

ALGORITHMS: dict[str, Algorithm] = {
    a.name: a
    for a in (
        Algorithm("maml", Chain(), GradientRule()),
        Algorithm("fomaml", Detached(), GradientRule()),
        Algorithm("reptile", Detached(), ReptileRule()),
        Algorithm("lazy-maml", LeapTie(), GradientRule()),
        Algorithm("lazy-reptile", LeapTie(), ReptileRule()),
        Algorithm("imaml", Implicit(), GradientRule(), _PROXIMAL, batchable=False),
        Algorithm("meta-sgd", Chain(), GradientRule(), LearnedRateStudent()),
        Algorithm("minibatchprox", Detached(), ReptileRule(), _PROXIMAL),
        Algorithm("taml", Chain(), _TAML),
        Algorithm("meta-curvature", Chain(), GradientRule(), CurvatureStudent()),
        Algorithm("lazy-taml", LeapTie(), _TAML),
        Algorithm("lazy-minibatchprox", LeapTie(), ReptileRule(), _PROXIMAL),
    )
}


def get_algorithm(name: str) -> Algorithm:
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; choose one of {sorted(ALGORITHMS)}")
    return ALGORITHMS[name]
