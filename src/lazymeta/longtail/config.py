"""The schema of a long-tail run, and :func:`validate`: every check that needs no data, before any work
starts. Defaults are the paper's CIFAR-LT-100 setting (Table 4)."""
from __future__ import annotations

from dataclasses import dataclass, field

from lazymeta.infra.config import as_dict, check
from lazymeta.infra.errors import ConfigError
from lazymeta.teacher import LazyTeacher

MWN_OPTIMIZERS = ("adam", "sgd")


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
class MetaWeightNetConfig:
    """Meta-Weight-Net's weighting network V (1-hidden-100-1, sigmoid) and its optimizer. Defaults: Shu et al.'s
    MW-Net.py (Adam, lr 1e-3, weight decay 1e-4); their class-imbalance script uses SGD, lr 1e-5, momentum 0.9,
    Nesterov, weight decay 5e-4."""

    hidden: int = 100
    optimizer: str = "adam"  # or sgd (Nesterov momentum when momentum > 0)
    lr: float = 1e-3
    momentum: float = 0.9  # sgd only
    weight_decay: float = 1e-4


@dataclass
class MethodConfig:
    name: str = "lazy-two-component"
    beta: float = 0.9999  # effective-number β of the class-balanced weights
    # τ: ε = -τ ∂L_val/∂ε, the reference's 0.01 (with the reference's look-ahead scale below).
    eps_step: float = 0.01
    # η̃, the look-ahead's step on the MEAN batch loss, as a multiple of the current learning rate. null: the
    # method's reference code: the batch size for the two-component methods (their code steps on the SUM of the
    # batch losses at the current rate), 1 for the others.
    lookahead_scale: float | None = None
    steps: int = 5  # k, the lazy student's SGD steps
    student_scale: float | None = None  # the student's rate / the current rate; null: the look-ahead's scale
    val_batch: int = 100  # validation images per look-ahead (the reference: one batch of 100)
    mwn: MetaWeightNetConfig = field(default_factory=MetaWeightNetConfig)


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
        (m.eps_step >= 0, f"method.eps_step (τ) must be >= 0, got {m.eps_step}"),
        (m.lookahead_scale is None or m.lookahead_scale > 0,
         f"method.lookahead_scale must be > 0 or null (the method's reference), got {m.lookahead_scale}"),
        (m.student_scale is None or m.student_scale > 0,
         f"method.student_scale must be > 0 or null (the look-ahead's), got {m.student_scale}"),
        (m.mwn.optimizer in MWN_OPTIMIZERS,
         f"method.mwn.optimizer must be one of {MWN_OPTIMIZERS}, got {m.mwn.optimizer!r}"),
        (m.mwn.hidden >= 1 and m.mwn.lr > 0 and m.mwn.momentum >= 0 and m.mwn.weight_decay >= 0,
         "method.mwn needs hidden >= 1, lr > 0, momentum >= 0 and weight_decay >= 0, got "
         f"{m.mwn.hidden}, {m.mwn.lr}, {m.mwn.momentum}, {m.mwn.weight_decay}"),
        (s.epochs >= 0 and s.batch_size >= 1 and s.lr > 0, "schedule needs epochs >= 0, batch_size >= 1, lr > 0"),
        (m.val_batch >= 1 and config.eval_batch >= 1, "method.val_batch and eval_batch must be >= 1"),
    ])
    return config
