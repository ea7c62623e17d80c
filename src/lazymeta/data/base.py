"""What every image dataset hands to the rest of lazymeta: one split as a uint8 array grouped by class.

Loaders decode once into these arrays (and cache them), so episode sampling is pure NumPy indexing.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Where datasets live: the argument, else ``$LAZYMETA_DATA``, else the per-user cache directory."""
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get("LAZYMETA_DATA"):
        return Path(os.environ["LAZYMETA_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "lazymeta"


@dataclass(frozen=True)
class ImageTransform:
    """How a raw image becomes a model input; saved with a run so users can feed their own files.

    Stored arrays are already resized and (if ``invert``) inverted; ``__call__`` applies the same
    preparation to a user's PIL image, ``to_tensor`` scales stored uint8 arrays.
    """

    size: int
    channels: int = 1
    invert: bool = False  # Omniglot-like data: ink becomes 1, paper 0
    mean: float = 0.0
    std: float = 1.0

    def __call__(self, image: Image.Image) -> torch.Tensor:
        image = image.convert("L" if self.channels == 1 else "RGB")
        image = image.resize((self.size, self.size), Image.Resampling.LANCZOS)
        array = np.asarray(image, dtype=np.uint8)
        if self.invert:
            array = 255 - array
        array = array[None] if self.channels == 1 else array.transpose(2, 0, 1)
        return self.to_tensor(array)

    def to_tensor(self, images: np.ndarray) -> torch.Tensor:
        """uint8 (..., C, H, W) -> float32 tensor, scaled to [0, 1] then standardised."""
        x = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0)
        return x.sub_(self.mean).div_(self.std)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ImageClasses:
    """One split of a class-structured image dataset.

    ``images`` is uint8 (N, C, H, W); ``labels[i]`` indexes ``classes``; ``groups`` names the
    super-class of each class (Omniglot alphabet, Unicode block, ...), used for splitting and reports.
    """

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    transform: ImageTransform
    groups: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {self.images.shape}")
        if len(self.labels) != len(self.images):
            raise ValueError(f"{len(self.labels)} labels for {len(self.images)} images")
        if self.groups and len(self.groups) != len(self.classes):
            raise ValueError(f"{len(self.groups)} groups for {len(self.classes)} classes")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def indices_by_class(self) -> list[np.ndarray]:
        """Image indices of each class, in class order (computed once per sampler)."""
        order = np.argsort(self.labels, kind="stable")
        bounds = np.searchsorted(self.labels[order], np.arange(self.num_classes + 1))
        return [order[bounds[c]:bounds[c + 1]] for c in range(self.num_classes)]
