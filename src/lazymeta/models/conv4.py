"""Conv4, the standard few-shot backbone of MAML and Reptile."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from lazymeta.models.conv4_hessian import Conv4SecondOrder


POOLS = ("max", "stride")


def conv_block(in_channels: int, out_channels: int, pool: str = "max") -> nn.Sequential:
    # Batch statistics only, as in MAML: no running buffers, so the network is a pure function of
    # its parameters and every task model normalises with its own batch.
    # Pooling before the ReLU computes the same function (max commutes with a monotone map) with the
    # ReLU on a quarter of the elements; parameter names are those of the usual conv-BN-ReLU-pool order.
    if pool == "stride":  # MAML's Omniglot network: stride-2 convolutions instead of max-pooling
        return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1),
                             nn.BatchNorm2d(out_channels, track_running_stats=False), nn.ReLU())
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.BatchNorm2d(out_channels, track_running_stats=False),
        nn.MaxPool2d(2),
        nn.ReLU(),
    )


def to_channels_last(x: Tensor) -> Tensor:
    """On a CPU, ``x`` with NHWC strides, also when it has one channel (where ``.contiguous(memory_format=...)``
    keeps NCHW strides, which are equally valid for C = 1, and convolutions then answer in NCHW).
    Unchanged under ``vmap`` over images (the physical tensor has another rank and keeps its layout) and
    on a GPU, where cuDNN picks its layouts itself and batch norm under vmap (the teacher's candidates,
    batched tasks) cannot handle channels-last tensors ("NYI: querying is_contiguous inside of vmap")."""
    if x.device.type != "cpu" or torch._C._functorch.is_batchedtensor(x):
        return x
    return torch.empty_like(x, memory_format=torch.channels_last).copy_(x)


class Conv4(nn.Module):
    """4 x [3x3 conv, batch norm, ReLU, 2x2 max-pool] and a linear head.

    64 filters for 28x28 Omniglot, 32 for 84x84 MiniImageNet (Finn et al. 2017; Nichol et al. 2018).
    ``pool="stride"``: MAML's Omniglot variant, stride-2 convolutions and the features averaged over
    space before the head.
    ``channels_last``: run the activations in NHWC on a CPU. It speeds first-order inner loops (every
    layer gets its vectorised NHWC kernel) but slows autograd's double backward of second-order MAML (3-12 %
    here), so :class:`~lazymeta.learner.MetaLearner` sets it for the algorithm it runs (NHWC where the
    hand-written derivatives spare the module that double backward).
    ``manual_gradient``: let students take the cross-entropy gradient from
    :class:`~lazymeta.models.conv4_gradient.Conv4Gradient` (CPU, max-pool) instead of autograd, and
    second-order ones its Hessian-vector products (:mod:`~lazymeta.models.conv4_hessian`): the same
    derivatives, faster on the small batches of few-shot tasks.
    """

    def __init__(self, in_channels: int = 1, image_size: int = 28, ways: int = 5, hidden: int = 64,
                 channels_last: bool = True, pool: str = "max", manual_gradient: bool = True):
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
        self.channels_last, self.pool, self.manual_gradient = channels_last, pool, manual_gradient
        self.features = nn.Sequential(*[conv_block(in_channels if i == 0 else hidden, hidden, pool) for i in range(4)])
        side = image_size
        for _ in range(4):
            side //= 2
        if side < 1:
            raise ValueError(f"Conv4 needs images of at least 16 pixels, got {image_size}")
        self.head = nn.Linear(hidden if pool == "stride" else hidden * side * side, ways)

    def forward(self, x: Tensor) -> Tensor:
        # A channels-last input makes every convolution answer in channels-last, so batch norm,
        # max-pool and ReLU run their vectorised NHWC kernels: in NCHW, max-pool and batch norm took
        # most of a CPU forward pass (benchmarks/meta_step.py).
        features = self.features(to_channels_last(x) if self.channels_last else x)
        return self.head(features.mean((2, 3)) if self.pool == "stride" else features.flatten(1))

    def cross_entropy_gradient(self, x: Tensor, y: Tensor, ways: int) -> Conv4SecondOrder | None:
        """``φ -> ∇_φ cross_entropy(self(φ, x)[:, :ways], y)`` without autograd (with that loss and the
        accuracy, :meth:`~lazymeta.models.conv4_gradient.Conv4Gradient.scores`, and its Hessian-vector
        products, :class:`~lazymeta.models.conv4_hessian.Conv4SecondOrder`), or None where it does not
        apply (``manual_gradient`` off, stride pooling, a subclass or edited blocks that compute another
        function, not a CPU, inside a torch.func transform, neither float32 nor float64)."""
        if not self.hand_written or x.device.type != "cpu" \
                or torch._C._functorch.is_batchedtensor(x) or x.dtype not in (torch.float32, torch.float64):
            return None
        return Conv4SecondOrder([name for name, _ in self.named_parameters()], self.features[0][1].eps, x, y, ways)

    @property
    def hand_written(self) -> bool:
        """Whether students on a CPU take this network's derivatives from
        :meth:`cross_entropy_gradient` rather than from autograd."""
        return self.manual_gradient and self._textbook_blocks()

    def _textbook_blocks(self) -> bool:
        """Whether this network is the function :class:`Conv4Gradient` differentiates: Conv4's own forward
        over max-pool blocks of 3x3 convolutions (padding 1), batch norm on batch statistics, 2x2 pooling."""
        if type(self).forward is not Conv4.forward or self.pool != "max":
            return False
        for conv, norm, pool, relu in self.features:
            if not (isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3) and conv.padding == (1, 1)
                    and conv.stride == (1, 1) and conv.dilation == (1, 1) and conv.groups == 1
                    and type(norm) is nn.BatchNorm2d and not norm.track_running_stats and norm.affine
                    and type(pool) is nn.MaxPool2d and pool.kernel_size == 2 and pool.stride == 2
                    and pool.padding == 0 and not pool.ceil_mode and type(relu) is nn.ReLU):
                return False
        return True
