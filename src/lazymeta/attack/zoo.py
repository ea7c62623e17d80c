"""The classifier zoo: white-box models whose gradients teach the meta-attacker, and the black-box target."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import Tensor, nn
from tqdm import tqdm

from lazymeta.attack.config import ZooConfig
from lazymeta.data import load_split
from lazymeta.models.attack import build_classifier
from lazymeta.infra.files import save_weights


def load_images(dataset: str, split: str, root: str | None, limit: int = 0) -> tuple[Tensor, Tensor]:
    """Images in [0, 1] (the attack's box) and labels, the first ``limit`` of the split (0: all)."""
    data = load_split(dataset, split, root)
    count = limit or len(data.images)
    images = torch.tensor(data.images[:count]).float().div_(255)
    return images, torch.tensor(data.labels[:count]).long()


def train_classifier(name: str, images: Tensor, labels: Tensor, settings: ZooConfig,
                     generator: torch.Generator, progress: bool = False) -> nn.Module:
    model = build_classifier(name, settings.width_divisor).to(images.device)
    optimizer = torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=0.9, nesterov=True,
                                weight_decay=settings.weight_decay)
    model.train()
    for _ in tqdm(range(settings.epochs), desc=f"train {name}", disable=not progress):
        for idx in torch.randperm(len(images), generator=generator).to(images.device).split(settings.batch):
            loss = F.cross_entropy(model(images[idx]), labels[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


def accuracy(model: nn.Module, images: Tensor, labels: Tensor, batch: int = 1000) -> float:
    return float(correct(model, images, labels, batch).float().mean())


def correct(model: nn.Module, images: Tensor, labels: Tensor, batch: int = 1000) -> Tensor:
    """Which images the model classifies correctly (the attack only targets those)."""
    model.eval()
    with torch.no_grad():
        return torch.cat([model(images[lo:lo + batch]).argmax(1) == labels[lo:lo + batch]
                          for lo in range(0, len(images), batch)])


def cached_classifier(directory: Path, name: str, settings: ZooConfig, train: tuple[Tensor, Tensor] | None,
                      generator: torch.Generator, device: torch.device, progress: bool = False) -> nn.Module:
    """``directory/<name>.safetensors`` if it exists, else train it on ``train`` (on its device) and save it."""
    path = directory / f"{name}.safetensors"
    if path.exists():
        model = build_classifier(name, settings.width_divisor).to(device)
        model.load_state_dict(load_file(str(path)))
        return model.eval()
    model = train_classifier(name, *train, settings, generator, progress)
    save_weights(path, model.state_dict())
    return model
