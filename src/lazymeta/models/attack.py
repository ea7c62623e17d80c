"""Networks of the meta-attack (Du et al., ICLR 2020): the classifier zoo and the meta-attacker.

MNIST: LeNet-5 and three small convnets (``net4`` is the held-out black-box target by default).
CIFAR-10: VGG-style nets built from the standard VGG layer lists, with a width divisor so that a CPU run
can shrink them, and a ResNet-style held-out target. The meta-attacker maps an image to a gradient
map of the same shape: a conv encoder and a transposed-conv decoder, the reference's layer lists or our
lighter preset.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

from torch import Tensor, nn


def _conv_stack(layers: Sequence[int | str], in_channels: int, batch_norm: bool) -> nn.Sequential:
    """3x3 convs (ints are widths) and 2x2 max-pools ("M"), ReLU after each conv."""
    modules: list[nn.Module] = []
    for layer in layers:
        if layer == "M":
            modules.append(nn.MaxPool2d(2))
            continue
        modules.append(nn.Conv2d(in_channels, int(layer), 3, padding=1))
        if batch_norm:
            modules.append(nn.BatchNorm2d(int(layer)))
        modules.append(nn.ReLU())
        in_channels = int(layer)
    return nn.Sequential(*modules)


class ConvNet(nn.Module):
    """A conv stack, then a ReLU MLP head: every MNIST and VGG classifier of the zoo is one of these."""

    def __init__(self, layers: Sequence[int | str], hidden: Sequence[int], in_channels: int = 1,
                 image_size: int = 28, classes: int = 10, batch_norm: bool = False):
        super().__init__()
        self.features = _conv_stack(layers, in_channels, batch_norm)
        side = image_size // 2 ** sum(layer == "M" for layer in layers)
        width = next(int(layer) for layer in reversed(layers) if layer != "M")
        sizes = [width * side * side, *hidden]
        mlp: list[nn.Module] = []
        for a, b in itertools.pairwise(sizes):
            mlp += [nn.Linear(a, b), nn.ReLU()]
        self.classifier = nn.Sequential(*mlp, nn.Linear(sizes[-1], classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).flatten(1))


class LeNet5(nn.Module):
    """LeCun et al. 1998: two 5x5 convs with max-pools, then 120-84-10."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                                        nn.Linear(84, classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).flatten(1))


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False), nn.BatchNorm2d(out_channels))
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                          nn.BatchNorm2d(out_channels))
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR ResNet (He et al. 2016): ``blocks`` basic blocks per stage, widths w, 2w, 4w, 8w."""

    def __init__(self, blocks: Sequence[int] = (2, 2, 2, 2), width: int = 64, classes: int = 10):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
        channels = width
        for stage, count in enumerate(blocks):
            out = width * 2 ** stage
            for i in range(count):
                layers.append(BasicBlock(channels, out, 2 if stage > 0 and i == 0 else 1))
                channels = out
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1))
        self.classifier = nn.Linear(channels, classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).flatten(1))


VGG_LAYERS = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def _vgg(name: str, divisor: int) -> nn.Module:
    layers = [layer if layer == "M" else max(4, int(layer) // divisor) for layer in VGG_LAYERS[name]]
    return ConvNet(layers, hidden=[], in_channels=3, image_size=32, batch_norm=True)


# name -> builder(width divisor); MNIST nets ignore the divisor (they are CPU-sized already).
CLASSIFIERS: dict[str, Callable[[int], nn.Module]] = {
    "lenet5": lambda d: LeNet5(),
    "net2": lambda d: ConvNet([32, "M", 64, "M"], hidden=[128]),
    "net3": lambda d: ConvNet([16, 16, "M", 32, "M"], hidden=[64]),
    "net4": lambda d: ConvNet([16, "M", 32, "M"], hidden=[64, 64]),
    **{name: (lambda d, name=name: _vgg(name, d)) for name in VGG_LAYERS},
    "resnet18": lambda d: ResNet((2, 2, 2, 2), width=max(4, 64 // d)),
    "resnet8": lambda d: ResNet((1, 1, 1), width=max(4, 16 // d)),
}


def build_classifier(name: str, width_divisor: int = 1) -> nn.Module:
    """A zoo classifier by name (MNIST: lenet5, net2-4; CIFAR-10: vgg11-19, resnet8, resnet18)."""
    if name not in CLASSIFIERS:
        raise ValueError(f"unknown classifier {name!r}; choose one of {sorted(CLASSIFIERS)}")
    return CLASSIFIERS[name](width_divisor)


Layer = tuple[int, int, int, int]  # (output channels, kernel, stride, padding)


class MetaAttacker(nn.Module):
    """Image -> predicted (std-normalised) gradient map of the attack loss: an encoder of convolutions, a
    decoder of transposed convolutions, the last mapping back to ``in_channels`` with no normalisation.

    Batch norm uses batch statistics only, no running buffers: the network is a pure function of its
    parameters, so the lazy teacher can vmap over candidate parameter sets and each attacked image
    normalises itself. ``relu_first`` orders each block conv -> ReLU -> BN (the reference's layer lists)
    rather than conv -> BN -> ReLU; ``kaiming`` draws the weights as the reference's learner does
    (Kaiming-normal, zero biases) instead of PyTorch's default.
    """

    def __init__(self, in_channels: int, encoder: Sequence[Layer], decoder: Sequence[Layer],
                 relu_first: bool = False, kaiming: bool = False):
        super().__init__()
        blocks, channels = [], in_channels
        for layers, conv in ((encoder, nn.Conv2d), (decoder[:-1], nn.ConvTranspose2d)):
            for width, kernel, stride, padding in layers:
                norm = nn.BatchNorm2d(width, track_running_stats=False)
                act = [nn.ReLU(), norm] if relu_first else [norm, nn.ReLU()]
                blocks.append(nn.Sequential(conv(channels, width, kernel, stride, padding), *act))
                channels = width
        self.body = nn.Sequential(*blocks)
        width, kernel, stride, padding = decoder[-1]
        self.out = nn.ConvTranspose2d(channels, width, kernel, stride, padding)
        if kaiming:
            for module in self.modules():
                if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                    nn.init.kaiming_normal_(module.weight)
                    nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.body(x))


# The reference's layer lists (dydjw9/MetaAttack_ICLR2020, meta_training/*/mnist_train.py and cifar_train.py):
# a 3x3 convolution, three stride-2 4x4 downsampling convolutions, their transposes and a 3x3 transposed
# convolution back to the image's channels; ReLU then BN after every layer but the last.
REFERENCE = {
    "mnist": (1, [(16, 3, 1, 1), (32, 4, 2, 1), (64, 4, 2, 1), (64, 4, 2, 1)],
              [(32, 3, 2, 0), (16, 4, 2, 1), (8, 4, 2, 1), (1, 3, 1, 1)]),
    "cifar10": (3, [(32, 3, 1, 1), (64, 4, 2, 1), (128, 4, 2, 1), (256, 4, 2, 1)],
                [(128, 4, 2, 1), (64, 4, 2, 1), (32, 4, 2, 1), (3, 3, 1, 1)]),
}
# Ours, a lighter CPU preset: 3x3 convolutions at full resolution and a single stride-2 4x4 one (and its
# transpose), BN then ReLU, PyTorch's default initialisation.
OURS = {
    "mnist": (1, [(16, 3, 1, 1), (32, 3, 1, 1), (64, 3, 1, 1), (64, 4, 2, 1)],
              [(32, 4, 2, 1), (16, 3, 1, 1), (8, 3, 1, 1), (1, 3, 1, 1)]),
    "cifar10": (3, [(32, 3, 1, 1), (64, 3, 1, 1), (128, 3, 1, 1), (256, 4, 2, 1)],
                [(128, 4, 2, 1), (64, 3, 1, 1), (32, 3, 1, 1), (3, 3, 1, 1)]),
}
ARCHITECTURES = {"reference": REFERENCE, "ours": OURS}


def meta_attacker(dataset: str, width_divisor: int = 1, architecture: str = "reference") -> MetaAttacker:
    """The ``reference`` (Du et al. 2020) or ``ours`` meta-attacker for ``mnist`` or ``cifar10``, every hidden
    width divided by ``width_divisor``."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown meta-attacker architecture {architecture!r}; choose one of {sorted(ARCHITECTURES)}")
    table = ARCHITECTURES[architecture]
    if dataset not in table:
        raise ValueError(f"no meta-attacker for dataset {dataset!r}; choose one of {sorted(table)}")
    channels, encoder, decoder = table[dataset]
    narrow = lambda layers: [(max(2, w // width_divisor), *rest) for w, *rest in layers]
    reference = architecture == "reference"
    return MetaAttacker(channels, narrow(encoder), [*narrow(decoder[:-1]), decoder[-1]], relu_first=reference,
                        kaiming=reference)
