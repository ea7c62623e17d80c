"""Backbones of the long-tail experiments: ResNet-32 for CIFAR and a small CNN for fast CPU runs.

Both take the keyword arguments of :func:`lazymeta.models.build_model` (``hidden`` is the first stage's
width) and keep ordinary batch norm with running statistics: a long-tail model is one network tested on
single images, not a per-task learner.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity shortcut; option A (He et al. 2016): a downsampling shortcut
    subsamples by 2 and zero-pads the new channels, so the network has no projection parameters."""

    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.pad = planes - in_planes
        self.stride = stride

    def shortcut(self, x: Tensor) -> Tensor:
        if self.stride == 1 and self.pad == 0:
            return x
        x = x[:, :, ::self.stride, ::self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet32(nn.Module):
    """ResNet-32 for 32x32 images: a 3x3 stem, 3 stages x 5 basic blocks (widths h, 2h, 4h with h = 16),
    global average pooling, a linear head; Kaiming-normal init as in the two-component-weighting code."""

    def __init__(self, in_channels: int = 3, image_size: int = 32, ways: int = 10, hidden: int = 16,
                 blocks: int = 5):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, hidden, 3, 1, 1, bias=False), nn.BatchNorm2d(hidden),
                                  nn.ReLU())
        widths = [hidden, 2 * hidden, 4 * hidden]
        layers, planes = [], hidden
        for stage, width in enumerate(widths):
            for b in range(blocks):
                layers.append(BasicBlock(planes, width, 2 if stage > 0 and b == 0 else 1))
                planes = width
        self.stages = nn.Sequential(*layers)
        self.head = nn.Linear(planes, ways)
        kaiming_init(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.stages(self.stem(x)).mean((2, 3)))


class SmallCNN(nn.Module):
    """3 x [3x3 conv, batch norm, ReLU] (widths h, 2h, 4h; max-pool after the first two), global average
    pooling and a linear head: minutes per epoch of CIFAR-10-LT on one CPU core."""

    def __init__(self, in_channels: int = 3, image_size: int = 32, ways: int = 10, hidden: int = 32):
        super().__init__()
        widths = [in_channels, hidden, 2 * hidden, 4 * hidden]
        layers: list[nn.Module] = []
        for i in range(3):
            layers += [nn.Conv2d(widths[i], widths[i + 1], 3, padding=1, bias=False), nn.BatchNorm2d(widths[i + 1]),
                       nn.ReLU()]
            if i < 2:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(widths[-1], ways)
        kaiming_init(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x).mean((2, 3)))


def kaiming_init(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight)
