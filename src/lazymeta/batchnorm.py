"""Batch-norm statistics at test time: transductive (the query batch's own) or the support set's.

Meta-learned Conv4s normalise with batch statistics (no running buffers). At test time the query
batch can either normalise itself (transductive, what MAML and Reptile report) or reuse the
statistics of the support set, so that each query image is classified on its own.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch.nn.functional as F
from torch import Tensor, nn

from lazymeta.params import Params

BN_MODES = ("transductive", "support")


def batch_norms(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@contextmanager
def _hooked(modules: list[nn.Module], hook: Callable) -> Iterator[None]:
    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def forward_with_support_statistics(module: nn.Module, forward: Callable[[Params, Tensor], Tensor],
                                    params: Params, support_x: Tensor, x: Tensor) -> Tensor:
    """``forward(params, x)`` with every batch norm using the (biased) statistics of ``support_x``."""
    norms = batch_norms(module)
    stats: dict[nn.Module, tuple[Tensor, Tensor]] = {}

    def record(m: nn.Module, inputs: tuple[Tensor], output: Tensor) -> None:
        dims = [0, *range(2, inputs[0].dim())]
        x = inputs[0].detach()  # statistics are constants: eval-mode batch_norm takes no gradient through them
        stats[m] = x.mean(dims), x.var(dims, unbiased=False)

    def apply(m: nn.Module, inputs: tuple[Tensor], output: Tensor) -> Tensor:
        mean, var = stats[m]
        return F.batch_norm(inputs[0], mean, var, m.weight, m.bias, training=False, eps=m.eps)

    with _hooked(norms, record):
        forward(params, support_x)
    with _hooked(norms, apply):
        return forward(params, x)
