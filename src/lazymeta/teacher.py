"""The lazy teacher: one differentiable leap from the meta-parameters toward the student's checkpoints.

``φ(θ) = θ + γ (R - θ) = (1 - γ) θ + γ R`` with ``R = Σ_j α_j φ_j``: γ is the *leap rate*, the fraction of
the way from θ toward the student's region, as the paper's experiments use it (a grid of 0.75..0.95, chosen
per task) and as Lookahead moves its slow weights. (γ, α) are chosen on the task's validation data from a
grid (γ in ``gammas``, α on the probability simplex with step ``alpha_step``). The checkpoints are
constants, so ``dφ/dθ = (1 - γ) I`` and the meta-gradient costs one backward pass whatever k is.
``reading="literal"`` takes eq. (4) as printed instead, ``φ = γ θ + (1 - γ) R`` (γ weighs θ).
"""
from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor
from torch.func import vmap

from lazymeta.params import Params, combine, detach, flat, lerp, unflat

DEFAULT_GAMMAS = (0.75, 0.8, 0.85, 0.9, 0.95)
SCORE_PRECISIONS = ("float32", "bfloat16")
READINGS = ("leap-rate", "literal")  # γ is the fraction of the way toward the student | γ weighs θ (eq. 4 as printed)

# metric(params) -> (loss, accuracy) on the task's validation data, for one parameter set; or, for a
# batch of T tasks whose parameters carry a leading task dimension, two (T,) tensors.
Metric = Callable[[Params], tuple[Tensor, Tensor]]


@dataclass(frozen=True)
class ValMetric:
    """A task's validation metric (a :data:`Metric`) with, where the model has them, the same (loss, accuracy)
    from a forward pass without autograd (``scores(φ)``), used whenever autograd is off (the teacher's
    candidates, Reptile's report), and ``value_and_gradient(φ)``: the loss's gradient with respect to φ (one
    tensor per parameter, in φ's order), the loss and the accuracy, which first-order outer rules use instead
    of autograd. Under ``vmap`` (parameters with a batch dimension) the plain metric runs."""

    metric: Metric
    scores: Metric | None = None
    value_and_gradient: Callable[[Params], tuple[list[Tensor], Tensor, Tensor]] | None = None

    def __call__(self, params: Params) -> tuple[Tensor, Tensor]:
        if self.scores is not None and not torch.is_grad_enabled() \
                and not torch._C._functorch.is_batchedtensor(next(iter(params.values()))):
            return self.scores(params)
        return self.metric(params)


class Leap(NamedTuple):
    """The teacher's choice, as tensors so that choosing needs no host sync: γ, loss and accuracy
    have the metric's shape S (() for one task, (T,) for a batch of T tasks), α has shape (*S, b)."""

    gamma: Tensor
    alpha: Tensor
    loss: Tensor
    accuracy: Tensor


def simplex_grid(size: int, step: float) -> Tensor:
    """All weight vectors of length ``size`` on the probability simplex with coordinates in multiples of ``step``."""
    units = round(1 / step)
    if abs(units * step - 1) > 1e-9:
        raise ValueError(f"alpha_step must divide 1, got {step}")
    rows = [c for c in itertools.product(range(units + 1), repeat=size - 1) if sum(c) <= units]
    grid = torch.tensor([(*c, units - sum(c)) for c in rows], dtype=torch.float64)
    return grid / units


@dataclass(frozen=True)
class LazyTeacher:
    """Chooses and takes the leap.

    Args:
        gammas: the γ grid (default 0.75..0.95 step 0.05, as in the paper).
        alpha_step: resolution of the simplex grid over the last b checkpoints (b > 1 only).
        select: ``"accuracy"`` (highest validation accuracy, ties broken by loss: the paper's rule) or
            ``"loss"`` (lowest validation loss). A metric without an accuracy returns a score for it
            (the meta-attacker's is the negative MSE), so both rules then pick the lowest loss.
        reading: ``"leap-rate"`` (φ = θ + γ(R - θ)) or ``"literal"`` (φ = γθ + (1 - γ)R, eq. (4) as
            printed); kept to compare the two.
        chunk: candidates scored per batched (vmapped) forward pass. ``None`` picks 1 on a CPU, where
            scoring the candidates one by one beat vmap's grouped convolutions by about 3-5x in
            ``benchmarks/meta_step.py``, and 128 on a GPU, where one batched pass wins.
        score_precision: ``"float32"``, or ``"bfloat16"`` to score the candidates under autocast
            (1.2-1.5x per lazy meta-step on a CPU with AMX; within noise on an H100, where scoring is
            not the bottleneck). Only the *choice* sees the rounding: the leap and its meta-gradient
            are computed afterwards in full precision. Near-ties between
            candidates may then be broken differently, and the scores the teacher reports are approximate.
    """

    gammas: Sequence[float] = DEFAULT_GAMMAS
    alpha_step: float = 0.05
    select: str = "accuracy"
    reading: str = "leap-rate"
    chunk: int | None = None
    score_precision: str = "float32"

    def __post_init__(self) -> None:
        if self.select not in ("loss", "accuracy"):
            raise ValueError(f"select must be 'loss' or 'accuracy', got {self.select!r}")
        if self.reading not in READINGS:
            raise ValueError(f"reading must be one of {READINGS}, got {self.reading!r}")
        if self.score_precision not in SCORE_PRECISIONS:
            raise ValueError(f"score_precision must be one of {SCORE_PRECISIONS}, got {self.score_precision!r}")
        if not self.gammas or not all(0 <= g <= 1 for g in self.gammas):
            raise ValueError(f"gammas must be a non-empty list in [0, 1], got {list(self.gammas)}")
        if not 0 < self.alpha_step <= 1 or abs(round(1 / self.alpha_step) * self.alpha_step - 1) > 1e-9:
            raise ValueError(f"alpha_step must be in (0, 1] and divide 1 (0.05, 0.1, 0.25, ...), got {self.alpha_step}")
        if self.chunk is not None and self.chunk < 1:
            raise ValueError(f"chunk (candidates per scoring pass) must be >= 1 or null, got {self.chunk}")

    def candidates(self, b: int) -> tuple[Tensor, Tensor]:
        """Every (γ, α) pair: gammas (C,) and alphas (C, b)."""
        alphas = simplex_grid(b, self.alpha_step) if b > 1 else torch.ones(1, 1, dtype=torch.float64)
        gammas = torch.tensor(list(self.gammas), dtype=torch.float64)
        return gammas.repeat_interleave(len(alphas)), alphas.repeat(len(gammas), 1)

    def theta_weight(self, gamma: Tensor) -> Tensor:
        """The weight of θ in the leap: 1 - γ (leap rate) or γ (literal eq. 4); also dφ/dθ."""
        return 1 - gamma if self.reading == "leap-rate" else gamma

    def choose(self, theta: Params, checkpoints: Sequence[Params], metric: Metric) -> Leap:
        """Score every candidate leap on the validation data and keep the best (per task, when θ and
        the checkpoints carry a leading task dimension and the metric scores every task)."""
        ref = next(iter(theta.values()))
        gammas, alphas = _grid_on(tuple(self.gammas), self.alpha_step, len(checkpoints), ref.device, ref.dtype)
        chunk = self.chunk or (128 if ref.is_cuda else 1)
        scored = []
        low = torch.autocast(ref.device.type, torch.bfloat16, enabled=self.score_precision == "bfloat16")
        with torch.no_grad(), low:
            # one vector each: the candidates are elementwise combinations, so one vector operation
            # builds each instead of one per parameter
            start, region = flat(theta), torch.stack([flat(c) for c in checkpoints])  # (P,), (b, P)
            for lo in range(0, len(gammas), chunk):
                candidates = _candidates(start, region, self.theta_weight(gammas[lo:lo + chunk]),
                                         alphas[lo:lo + chunk])
                if chunk == 1:
                    loss, acc = metric(unflat(candidates[0], theta))
                    scored.append((loss.unsqueeze(0), acc.unsqueeze(0)))
                else:
                    scored.append(vmap(metric)(unflat(candidates, theta)))
        loss, acc = (torch.cat(parts) for parts in zip(*scored))  # (candidates, *S)
        best = self._best(loss, acc)

        def row(grid: Tensor) -> Tensor:  # not grid[best]: indexing with a 0-d GPU tensor syncs with the host
            return grid.index_select(0, best.reshape(-1)).reshape(best.shape + grid.shape[1:])

        def pick(scores: Tensor) -> Tensor:
            return scores.gather(0, best.unsqueeze(0)).squeeze(0)

        return Leap(row(gammas), row(alphas), pick(loss), pick(acc))

    def _best(self, loss: Tensor, acc: Tensor) -> Tensor:
        if self.select == "loss":
            return torch.argmin(loss, dim=0)
        return torch.argmin(torch.where(acc == acc.max(dim=0, keepdim=True).values, loss, torch.inf), dim=0)

    def leap(self, theta: Params, checkpoints: Sequence[Params], choice: Leap) -> Params:
        """``θ + γ (Σ α_j φ_j - θ)`` (or the literal reading's), differentiable in θ; the checkpoints are constants."""
        hull = combine([detach(c) for c in checkpoints], choice.alpha)
        return lerp(theta, hull, self.theta_weight(choice.gamma))


@functools.lru_cache(maxsize=64)
def _grid_on(gammas: tuple[float, ...], alpha_step: float, b: int, device: torch.device,
             dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """The candidate grid, copied to the device once: a copy per task would be a host sync per task."""
    teacher = LazyTeacher(gammas, alpha_step)
    return tuple(t.to(device, dtype) for t in teacher.candidates(b))


def _candidates(start: Tensor, region: Tensor, weights: Tensor, alphas: Tensor) -> Tensor:
    """Candidate parameter vectors, one row each: w_c θ + (1-w_c) Σ_j α_cj φ_j, w_c the weight of θ in
    candidate c (``region`` holds the checkpoints φ_j as rows)."""
    w = weights[:, None]
    return w * start + (1 - w) * (alphas @ region)
