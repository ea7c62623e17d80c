"""The schema of a long-tail run, and :func:`validate`: every check that needs no data, before any work
starts. Defaults are the paper's CIFAR-LT-100 setting (Table 4)."""
from __future__ import annotations

from dataclasses import dataclass, field

from lazymeta.infra.config import as_dict, check
from lazymeta.infra.errors import ConfigError
from lazymeta.teacher import LazyTeacher


@dataclass
class LongtailDataConfig:
    dataset: str = "cifar100-lt"  # <registered dataset>-lt, or folder-lt (root: a directory or zip)
    root: str | None = None  # else $LAZYMETA_DATA, else ~/.cache/lazymeta
    imbalance: float = 100.0  # largest / smallest class of the tail profile
    profile: str = "exponential"  # or "step"
    # Two-component-weighting builder: 10 images per class held out as the balanced validation set, the
    # tail cut from the rest. Cui et al.'s builder: holdout_per_class 0 (no validation set).
    holdout_per_class: int = 10
    head: int | None = None  # images of the largest class; null: all that remain
    split_seed: int = 0  # which images form the tail and the validation set (fixed across training seeds)
    augment: bool = True  # reflect-pad 4 + random crop
    flip: bool = True  # random horizontal flip (turn off for digits)


@dataclass
class LongtailModelConfig:
    name: str = "resnet32"  # or small-cnn
    hidden: int = 16  # first stage's width


@dataclass
class MethodConfig:
    name: str = "lazy-two-component"
    beta: float = 0.9999  # effective-number β of the class-balanced weights
    # τ: ε = -τ ∂L_val/∂ε. L_B is a mean here and a sum in the reference code (τ = 0.01 at batch 100), so
    # τ = 1 reproduces the reference step at batch 100.
    eps_step: float = 1.0
    lookahead_lr: float | None = None  # η of the look-ahead θ̃; null: the current learning rate
    steps: int = 5  # k, the lazy student's SGD steps
    student_lr: float | None = None  # null: the look-ahead's η
    val_batch: int = 100  # validation images per look-ahead (the reference: one batch of 100)


@dataclass
class ScheduleConfig:
    epochs: int = 200
    batch_size: int = 100
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    milestones: list[int] = field(default_factory=lambda: [160, 180])  # epochs where lr *= decay
    decay: float = 0.01
    warmup_epochs: int = 0  # linear warm-up (Cui et al. use 5)
    reweight_from: int = 160  # first epoch of the re-weighting stage of deferred methods


@dataclass
class LongtailConfig:
    data: LongtailDataConfig = field(default_factory=LongtailDataConfig)
    model: LongtailModelConfig = field(default_factory=LongtailModelConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    # The lazy method's γ grid; b = 1 checkpoint, so α is 1. γ is chosen by balanced-validation accuracy.
    teacher: LazyTeacher = field(default_factory=lambda: LazyTeacher(select="accuracy"))
    seed: int = 0
    eval_batch: int = 1000
    device: str = "auto"

    def to_dict(self) -> dict:
        return as_dict(self)


def validate(config: LongtailConfig) -> LongtailConfig:
    """Reject settings that cannot run, naming the key (checks that need no data)."""
    from lazymeta.data.longtail import PROFILES
    from lazymeta.longtail.methods import METHODS
    from lazymeta.models import MODELS

    d, m, s = config.data, config.method, config.schedule
    if m.name not in METHODS:
        raise ConfigError(f"method.name must be one of {sorted(METHODS)}, got {m.name!r}")
    check([
        (config.model.name in MODELS, f"model.name must be one of {sorted(MODELS)}, got {config.model.name!r}"),
        (d.profile in PROFILES, f"data.profile must be one of {PROFILES}, got {d.profile!r}"),
        (d.imbalance >= 1, f"data.imbalance must be >= 1, got {d.imbalance}"),
        (d.holdout_per_class > 0 or not METHODS[m.name].needs_val,
         f"method {m.name} learns from a balanced validation set: data.holdout_per_class must be > 0"),
        (0 <= m.beta < 1, f"method.beta must be in [0, 1), got {m.beta}"),
        (m.steps >= 0, f"method.steps must be >= 0, got {m.steps}"),
        (s.epochs >= 0 and s.batch_size >= 1 and s.lr > 0, "schedule needs epochs >= 0, batch_size >= 1, lr > 0"),
        (m.val_batch >= 1 and config.eval_batch >= 1, "method.val_batch and eval_batch must be >= 1"),
    ])
    return config
