"""Functional parameters: a model's weights as a ``dict[str, Tensor]``, one verb per helper.

Models stay ordinary ``nn.Module``s; every forward pass of a task model goes through
:func:`torch.func.functional_call`, so a meta-learner can hold many parameter sets for one module.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call

Params = dict[str, Tensor]


def params_of(module: nn.Module) -> Params:
    """The module's own parameters (the leaves a meta-optimizer updates)."""
    return dict(module.named_parameters())


@dataclass(frozen=True)
class Functional:
    """``f(params, x)``: the module's forward pass with the given parameters and its own buffers; ``module``
    is there for what the module offers besides its forward pass (a hand-written gradient)."""

    module: nn.Module

    def __call__(self, params: Params, x: Tensor) -> Tensor:
        return functional_call(self.module, params, (x,), strict=False)


def functional(module: nn.Module) -> Functional:
    """The module as a function of its parameters: ``functional(m)(params, x)``."""
    return Functional(module)


def detach(params: Params) -> Params:
    return {name: p.detach() for name, p in params.items()}


def clone(params: Params) -> Params:
    return {name: p.detach().clone() for name, p in params.items()}


def sub(a: Params, b: Params) -> Params:
    return {name: a[name] - b[name] for name in a}


def lerp(start: Params, end: Params, weight: float | Tensor) -> Params:
    """``weight * start + (1 - weight) * end`` (the teacher's γ weighs the start point). A tensor
    ``weight`` of shape S weighs parameter sets with the same leading dimensions S (one γ per task)."""
    return {name: _leading(weight, p) * p + (1 - _leading(weight, p)) * end[name] for name, p in start.items()}


def combine(params: Sequence[Params], weights: Tensor) -> Params:
    """Linear combination ``Σ_j w_j params_j``; ``weights`` has shape (*S, len(params)) for parameter
    sets with leading dimensions S (one convex combination per task)."""
    return {name: sum(_leading(weights[..., j], p[name]) * p[name] for j, p in enumerate(params))
            for name in params[0]}


def scaled(tensors: Sequence[Tensor], weight: float | Tensor) -> list[Tensor]:
    """Each tensor times ``weight``; a tensor ``weight`` of shape S scales tensors with leading dimensions S."""
    return [_leading(weight, t) * t for t in tensors]


def _leading(weight: float | Tensor, like: Tensor) -> float | Tensor:
    """``weight`` shaped to broadcast over ``like``'s leading dimensions."""
    if not isinstance(weight, Tensor):
        return weight
    return weight.reshape(*weight.shape, *[1] * (like.dim() - weight.dim()))


def stack(params: Sequence[Params]) -> Params:
    """Stack parameter sets along a new leading dimension (for ``vmap`` over candidates or tasks)."""
    return {name: torch.stack([p[name] for p in params]) for name in params[0]}


def flat(params: Params) -> Tensor:
    """All parameters as one vector (for all-reduce, norms and finite-difference checks)."""
    return torch.cat([p.reshape(-1) for p in params.values()])


def unflat(vector: Tensor, like: Params) -> Params:
    """Inverse of :func:`flat`, shaped like ``like``; views. Leading dimensions of ``vector`` (several
    vectors) are kept in front of each shape."""
    out, offset = {}, 0
    for name, p in like.items():
        out[name] = vector[..., offset:offset + p.numel()].view(*vector.shape[:-1], *p.shape)
        offset += p.numel()
    return out
