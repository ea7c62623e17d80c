"""Backbones, built by name from a config."""
from __future__ import annotations

from torch import nn

from lazymeta.models.conv4 import Conv4
from lazymeta.models.resnet import ResNet32, SmallCNN

MODELS = {"conv4": Conv4, "resnet32": ResNet32, "small-cnn": SmallCNN}


def build_model(name: str, *, in_channels: int, image_size: int, ways: int, hidden: int, **options) -> nn.Module:
    """A backbone by name; ``options`` are the model's own (Conv4: ``pool``)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name](in_channels=in_channels, image_size=image_size, ways=ways, hidden=hidden, **options)


__all__ = ["Conv4", "MODELS", "ResNet32", "SmallCNN", "build_model"]
