"""A black-box classifier that counts its own queries, so no attack can under-report them."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class BlackBox:
    """Log-probabilities of a hidden model; **one query = one image evaluated**, whatever the batching.

    Queries are also counted per *owner* (the attacked image a query serves), so a batch of attacks
    running together gets each image's own count.

    Args:
        model: the target classifier (put in eval mode; its gradients are never exposed).
        owners: how many attacked images share this black box.
    """

    def __init__(self, model: nn.Module, owners: int = 1):
        self._model = model.eval()
        self._counts = torch.zeros(owners, dtype=torch.long)

    def __call__(self, images: Tensor, owners: Tensor | None = None) -> Tensor:
        owners = torch.zeros(len(images), dtype=torch.long) if owners is None else owners.cpu()
        if len(owners) != len(images):
            raise ValueError(f"{len(owners)} owners for {len(images)} images")
        self._counts += torch.bincount(owners, minlength=len(self._counts))
        with torch.no_grad():
            return F.log_softmax(self._model(images), 1)

    @property
    def queries(self) -> Tensor:
        """Queries so far, per owner (a copy)."""
        return self._counts.clone()

    @property
    def total(self) -> int:
        return int(self._counts.sum())
