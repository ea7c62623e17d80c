"""Conv4, the standard few-shot backbone of MAML and Reptile."""
from __future__ import annotations

from torch import Tensor, nn


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    # Batch statistics only, as in MAML: no running buffers, so the network is a pure function of
    # its parameters and every task model normalises with its own batch.
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.BatchNorm2d(out_channels, track_running_stats=False),
        nn.ReLU(),
        nn.MaxPool2d(2),
    )


class Conv4(nn.Module):
    """4 x [3x3 conv, batch norm, ReLU, 2x2 max-pool] and a linear head.

    64 filters for 28x28 Omniglot, 32 for 84x84 MiniImageNet (Finn et al. 2017; Nichol et al. 2018).
    """

    def __init__(self, in_channels: int = 1, image_size: int = 28, ways: int = 5, hidden: int = 64):
        super().__init__()
        self.features = nn.Sequential(*[conv_block(in_channels if i == 0 else hidden, hidden) for i in range(4)])
        side = image_size
        for _ in range(4):
            side //= 2
        if side < 1:
            raise ValueError(f"Conv4 needs images of at least 16 pixels, got {image_size}")
        self.head = nn.Linear(hidden * side * side, ways)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x).flatten(1))
