"""What a meta-attacker's unadapted prediction is worth to the attack, on a held-out target's true gradients.

The attack steps ``sign(g)`` on the q coordinates of largest predicted |g|, so MSE alone says little: a
prediction can have a poor MSE and still pick the right coordinates with the right signs. Reported: the
overlap of the predicted top-q coordinates with the true top-q (chance: q / d), the sign agreement on the
predicted top-q (what is stepped on) and over every coordinate, the cosine and the MSE.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lazymeta.attack.metaattacker import GradientTask, predict


def agreement(predicted: Tensor, true: Tensor, q: int) -> dict[str, float]:
    """Mean over images of each diagnostic; both maps (B, ...) with the same shape."""
    p, t = predicted.flatten(1), true.flatten(1)
    top = p.abs().topk(q, 1).indices
    chosen = torch.zeros_like(p, dtype=torch.bool).scatter(1, top, True)
    best = torch.zeros_like(chosen).scatter(1, t.abs().topk(q, 1).indices, True)
    same_sign = (p.sign() == t.sign()) & (t != 0)
    return {"topq_overlap": float((chosen & best).sum(1).float().mean() / q),
            "topq_overlap_chance": q / p.shape[1],
            "topq_sign_agreement": float(same_sign.gather(1, top).float().mean()),
            "sign_agreement": float((same_sign.sum(1) / (t != 0).sum(1).clamp_min(1)).mean()),
            "cosine": float(F.cosine_similarity(p, t, dim=1).mean()),
            "mse": float((p - t).pow(2).mean())}


def diagnose(model: nn.Module, task: GradientTask, q: int) -> dict[str, float]:
    """:func:`agreement` of ``model``'s unadapted prediction with ``task``'s true maps."""
    return {"images": len(task.images), **agreement(predict(model, task.images), task.grads, q)}
