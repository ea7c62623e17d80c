"""The attack loop shared by every method: meta-attack, ZOO and NES differ only in the gradient they step on.

Each iteration queries the black box once per attacked image (the success check and, for one-sided
differences, the base loss), takes a gradient estimate on q coordinates and steps
``x ← clip_[0,1](x - lr · sign(g))`` on them (the reference's "Adam" with β1 = β2 = 0). An image stops
at its first adversarial iterate; it is a success if its L2 distortion is within the threshold.

- ``meta``: the meta-attacker predicts the gradient map; the q coordinates are its largest |values|.
  Every ``finetune_interval``-th iteration (the first after ``finetune_interval - 1`` warm-up iterations
  on the prediction alone, as the reference's ``(step + 1) % interval == 0``) the black box is queried
  on them (ZOO differences), a per-image copy of the meta-attacker is fine-tuned on those values with a
  fresh Adam (the reference builds a new optimiser every round) and the step uses them.
- ``zoo``: coordinate differences on q random coordinates every iteration (Chen et al. 2017).
- ``nes``: an NES estimate of the whole map (Ilyas et al. 2018), stepped on its q largest coordinates.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.func import vmap

from lazymeta.attack.blackbox import BlackBox
from lazymeta.attack.config import AttackLoopConfig
from lazymeta.attack.estimators import coordinate_differences, nes
from lazymeta.attack.gradients import margin_loss
from lazymeta.params import functional, params_of

METHODS = ("meta", "zoo", "nes")


class AttackResult(NamedTuple):
    """Per attacked image: adversarial found, success (adversarial and L2 within threshold), L2, queries."""

    adversarial: Tensor
    success: Tensor
    l2: Tensor
    queries: Tensor
    images: Tensor


class _Attack:
    """State of one batched attack: the images, the black box, and (meta only) the fine-tuned copies."""

    def __init__(self, method: str, model: nn.Module, images: Tensor, labels: Tensor, targets: Tensor | None,
                 settings: AttackLoopConfig, attacker: nn.Module | None, generator: torch.Generator):
        if method not in METHODS:
            raise ValueError(f"unknown attack method {method!r}; choose one of {METHODS}")
        if method == "meta" and attacker is None:
            raise ValueError("the meta attack needs a meta-attacker")
        if settings.targeted and targets is None:
            raise ValueError("a targeted attack needs target classes")
        self.method, self.s, self.generator = method, settings, generator
        self.box = BlackBox(model, len(images))
        self.labels, self.targets = labels, targets if settings.targeted else None
        self.x = images.clone()
        if attacker is not None:
            # One copy per image, stacked on a leading dimension; Adam is elementwise, so one optimizer
            # over the stacked tensors is exactly one Adam per copy (rows not fine-tuned get zero
            # gradients and, with fresh moments, do not move).
            self.copies = {n: p.detach()[None].repeat(len(images), *[1] * p.dim()).requires_grad_(True)
                           for n, p in params_of(attacker).items()}
            forward = functional(attacker)
            self.predict = vmap(lambda p, xi: forward(p, xi[None])[0])

    def loss(self, images: Tensor, owners: Tensor) -> Tensor:
        """The margin loss as the black box reports it; ``owners`` are global image indices."""
        log_probs = self.box(images, owners)
        return margin_loss(log_probs, self.labels[owners], None if self.targets is None else self.targets[owners])

    def adversarial(self, log_probs: Tensor, rows: Tensor) -> Tensor:
        pred = log_probs.argmax(1)
        return pred == self.targets[rows] if self.targets is not None else pred != self.labels[rows]

    def direction(self, iteration: int, rows: Tensor, base: Tensor) -> Tensor:
        """The (sparse) gradient estimate stepped on, for images ``rows`` whose current loss is ``base``."""
        x, q = self.x[rows], self.s.coordinates

        def loss(images: Tensor, owners: Tensor) -> Tensor:
            return self.loss(images, rows[owners])

        def differences(coords: Tensor) -> Tensor:
            return coordinate_differences(loss, x, coords, self.s.h, self.s.symmetric,
                                          None if self.s.symmetric else base)

        if self.method == "zoo":
            draws = torch.rand(x[0].numel() * len(x), generator=self.generator).to(x.device)
            coords = draws.view(len(x), -1).argsort(1)[:, :q]
            values = differences(coords)
        elif self.method == "nes":
            estimate = nes(loss, x, self.s.nes_samples, self.s.nes_sigma, self.generator).flatten(1)
            coords = estimate.abs().topk(q, 1).indices
            values = estimate.gather(1, coords)
        else:
            with torch.no_grad():
                predicted = self.predict({n: p[rows] for n, p in self.copies.items()}, x).flatten(1)
            coords = predicted.abs().topk(q, 1).indices
            values = predicted.gather(1, coords)
            if finetune_round(iteration, self.s.finetune_interval):
                values = differences(coords)
                self.finetune(rows, x, coords, _match_scale(values, predicted.gather(1, coords)))
        return torch.zeros_like(x.flatten(1)).scatter(1, coords, values).view_as(x)

    def finetune(self, rows: Tensor, x: Tensor, coords: Tensor, targets: Tensor) -> None:
        """A few Adam steps of each image's copy on MSE to the queried values at its coordinates, from fresh
        moments every round."""
        optimizer = torch.optim.Adam(self.copies.values(), lr=self.s.finetune_lr)
        for _ in range(self.s.finetune_steps):
            predicted = self.predict({n: p[rows] for n, p in self.copies.items()}, x).flatten(1)
            loss = (predicted.gather(1, coords) - targets).pow(2).mean(1).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


def finetune_round(iteration: int, interval: int) -> bool:
    """Whether iteration (0-based) queries and fine-tunes: the reference's ``(step + 1) % interval == 0``."""
    return (iteration + 1) % interval == 0


def target_classes(labels: Tensor, classes: int = 10) -> Tensor:
    """The target class of a targeted attack: ``(label + 1) mod classes``, as the reference's test_all.py."""
    return (labels + 1) % classes


def _match_scale(values: Tensor, reference: Tensor) -> Tensor:
    """``values`` rescaled per image to the RMS of ``reference``.

    The meta-attacker predicts std-normalised maps while differences have the loss's own scale; the
    step only uses signs, so fine-tuning keeps the predictor's scale and learns directions.
    """
    rms = lambda t: t.pow(2).mean(1, keepdim=True).sqrt()
    return values * rms(reference) / rms(values).clamp_min(1e-12)


def attack(method: str, model: nn.Module, images: Tensor, labels: Tensor, settings: AttackLoopConfig,
           attacker: nn.Module | None = None, targets: Tensor | None = None,
           generator: torch.Generator | None = None) -> AttackResult:
    """Attack ``images`` (correctly classified by ``model``, values in [0, 1]) all at once, as a black box.

    Args:
        method: ``meta`` (needs ``attacker``), ``zoo`` or ``nes``.
        model: the target; only its output probabilities are used, through a query-counting BlackBox.
            Everything runs on the device of ``images`` (the model and attacker must be there too);
            ``generator`` is a CPU generator, so a seed gives the same draws on any device.
        labels: true classes; ``targets``: target classes when ``settings.targeted``.
        attacker: the meta-trained meta-attacker (left unchanged: each image fine-tunes its own copy).

    Returns:
        Per image: adversarial found, success, L2 distortion, and queries spent up to its first
        adversarial iterate (all queries spent when it never became adversarial).
    """
    state = _Attack(method, model, images, labels, targets, settings, attacker,
                    generator or torch.Generator().manual_seed(0))
    n = len(images)
    adversarial = torch.zeros(n, dtype=torch.bool, device=images.device)
    for iteration in range(settings.max_iterations + 1):
        rows = torch.nonzero(~adversarial)[:, 0]
        if len(rows) == 0:
            break
        log_probs = state.box(state.x[rows], rows)
        found = state.adversarial(log_probs, rows)
        adversarial[rows[found]] = True
        rows, log_probs = rows[~found], log_probs[~found]
        if iteration == settings.max_iterations or len(rows) == 0:
            break
        base = margin_loss(log_probs, labels[rows], None if state.targets is None else state.targets[rows])
        step = state.direction(iteration, rows, base)
        with torch.no_grad():
            state.x[rows] = (state.x[rows] - settings.step_lr * step.sign()).clamp(0, 1)
    l2 = (state.x - images).flatten(1).norm(dim=1)
    return AttackResult(adversarial, adversarial & (l2 <= settings.l2_threshold), l2, state.box.queries, state.x)
