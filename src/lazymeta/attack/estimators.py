"""Zeroth-order gradient estimates from loss values only: ZOO coordinate differences and NES.

``loss(images, owners) -> (n,)`` is the attack loss of a batch of images as the black box reports it;
``owners[i]`` says which attacked image (row of ``x``) query i serves, so queries are counted per image.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

Loss = Callable[[Tensor, Tensor], Tensor]


def _rows(x: Tensor, copies: int) -> Tensor:
    """Owner index of each of ``copies`` perturbed images per row of ``x``."""
    return torch.arange(len(x), device=x.device).repeat_interleave(copies)


def coordinate_differences(loss: Loss, x: Tensor, coords: Tensor, h: float = 1e-4,
                           symmetric: bool = False, base: Tensor | None = None) -> Tensor:
    """ZOO (Chen et al. 2017): ``∂L/∂x_i`` for the flat coordinates ``coords`` (B, q) of each image.

    One-sided: ``(L(x + h e_i) - L(x)) / h``, one query per coordinate (plus L(x) unless ``base`` is
    given); symmetric: ``(L(x + h e_i) - L(x - h e_i)) / 2h``, two queries per coordinate.
    """
    b, q = coords.shape
    flat = x.flatten(1)
    signs = (1.0, -1.0) if symmetric else (1.0,)
    probes = []
    for sign in signs:
        p = flat.repeat_interleave(q, 0)
        p[torch.arange(b * q, device=x.device), coords.reshape(-1)] += sign * h
        probes.append(p)
    owners = _rows(x, q).repeat(len(signs))
    values = loss(torch.cat(probes).view(-1, *x.shape[1:]), owners).view(len(signs), b, q)
    if symmetric:
        return (values[0] - values[1]) / (2 * h)
    if base is None:
        base = loss(x, _rows(x, 1))
    return (values[0] - base[:, None]) / h


def nes(loss: Loss, x: Tensor, samples: int = 50, sigma: float = 1e-3,
        generator: torch.Generator | None = None) -> Tensor:
    """NES (Ilyas et al. 2018): ``1/(2nσ) Σ_k (L(x + σu_k) - L(x - σu_k)) u_k``, u_k ~ N(0, I), 2n queries."""
    u = torch.randn((len(x), samples, *x.shape[1:]), generator=generator, dtype=x.dtype).to(x.device)
    probes = torch.cat([x[:, None] + sigma * u, x[:, None] - sigma * u], 1).flatten(0, 1)
    values = loss(probes, _rows(x, 2 * samples)).view(len(x), 2, samples)
    weights = (values[:, 0] - values[:, 1]).view(len(x), samples, *[1] * (x.dim() - 1))
    return (weights * u).sum(1) / (2 * samples * sigma)
