"""Long-tailed recognition: class-balanced weights, (lazy) two-component weighting and their baselines."""
from __future__ import annotations

from lazymeta.longtail.config import LongtailConfig as LongtailConfig
from lazymeta.longtail.methods import METHODS as METHODS
from lazymeta.longtail.methods import Context as Context
from lazymeta.longtail.methods import train_step as train_step
from lazymeta.longtail.weights import class_balanced_weights as class_balanced_weights

__all__ = ["METHODS", "Context", "LongtailConfig", "class_balanced_weights", "train_step"]
