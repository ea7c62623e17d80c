"""The attack loss and the white-box gradient maps the meta-attacker learns to predict."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def margin_loss(log_probs: Tensor, labels: Tensor, targets: Tensor | None = None) -> Tensor:
    """Per-image hinge on the log-probability margin; 0 exactly when the attack has succeeded.

    Untargeted: ``max(0, log p_y - max_{j≠y} log p_j)``. Targeted (class t):
    ``max(0, max_{j≠t} log p_j - log p_t)``.
    """
    cls = labels if targets is None else targets
    own = log_probs.gather(1, cls[:, None])[:, 0]
    other = log_probs.scatter(1, cls[:, None], -torch.inf).amax(1)
    margin = own - other if targets is None else other - own
    return margin.clamp_min(0)


def input_gradients(model: nn.Module, images: Tensor, labels: Tensor, batch: int = 500) -> Tensor:
    """``∇_x`` of the untargeted margin loss for each image, each map divided by its own std.

    Dividing by the std makes the regression target scale-free: the attack only uses the direction.
    Images the model already misclassifies have a zero gradient (and std): callers drop them.
    """
    model.eval()
    out = []
    for lo in range(0, len(images), batch):
        x = images[lo:lo + batch].clone().requires_grad_(True)
        loss = margin_loss(F.log_softmax(model(x), 1), labels[lo:lo + batch]).sum()
        (grad,) = torch.autograd.grad(loss, x)
        std = grad.flatten(1).std(1).view(-1, *[1] * (grad.dim() - 1))
        out.append(grad / std.clamp_min(1e-12))
    return torch.cat(out)
