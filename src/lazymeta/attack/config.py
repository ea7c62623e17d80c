"""The schema of a meta-attack run, and :func:`validate`: every check that needs no data, before any work
starts. Defaults are the reference MNIST setting of Du et al. (ICLR 2020, dydjw9/MetaAttack_ICLR2020)."""
from __future__ import annotations

from dataclasses import dataclass, field

from lazymeta.infra.config import as_dict, check
from lazymeta.teacher import LazyTeacher

# method name -> (attack loop method, meta-training section of the config, UNTRAINED, or None)
UNTRAINED = "untrained"  # the meta-attackers' common random initialisation, attacked with the same loop
METHODS = {"meta": ("meta", "meta"), "lazy-meta": ("meta", "lazy"), "meta-long": ("meta", "long"),
           UNTRAINED: ("meta", UNTRAINED), "zoo": ("zoo", None), "nes": ("nes", None)}
SECTIONS = ("meta", "lazy", "long")
DATASETS = ("mnist", "cifar10")


@dataclass
class AttackDataConfig:
    dataset: str = "mnist"  # mnist | cifar10
    root: str | None = None  # else $LAZYMETA_DATA, else ~/.cache/lazymeta
    train_images: int = 0  # classifier training images, the first of the train split (0: all)
    gradient_images: int = 2000  # images per white-box task (the first of the train split)
    attack_images: int = 1000  # the first N test images the target classifies correctly


@dataclass
class ZooConfig:
    """Classifier training (reference: 50 epochs of SGD lr 0.01, momentum 0.9, Nesterov, wd 1e-6, batch 100)."""

    epochs: int = 50
    lr: float = 0.01
    batch: int = 100
    weight_decay: float = 1e-6
    width_divisor: int = 1  # CIFAR nets only


@dataclass
class MetaTrainConfig:
    """How one meta-attacker is meta-trained (defaults: the reference Reptile with inner Adam)."""

    algorithm: str = "reptile"  # reptile | fomaml | lazy-reptile | lazy-maml
    inner: str = "adam"  # adam (reference) | sgd (the Student)
    steps: int = 5
    inner_lr: float = 0.01
    keep_last: int = 1  # b, lazy algorithms only
    meta_optimizer: str = "sgd"  # sgd: θ ← θ - meta_lr · mean(θ - φ) under the reptile rule
    meta_lr: float = 1.0
    iterations: int = 200
    support: int = 25
    query: int = 25


@dataclass
class AttackLoopConfig:
    """The attack's knobs (defaults: the reference MNIST untargeted attack)."""

    max_iterations: int = 300
    coordinates: int = 128  # q: coordinates queried / stepped per iteration
    step_lr: float = 0.01
    l2_threshold: float = 20.0
    targeted: bool = False
    h: float = 1e-4  # finite-difference step
    symmetric: bool = False  # two-sided differences (2 queries per coordinate instead of 1)
    finetune_interval: int = 5
    finetune_steps: int = 20
    finetune_lr: float = 0.01
    nes_samples: int = 50  # antithetic pairs: 2 queries each
    nes_sigma: float = 1e-3


@dataclass
class AttackConfig:
    data: AttackDataConfig = field(default_factory=AttackDataConfig)
    whitebox: list[str] = field(default_factory=lambda: ["lenet5", "net2", "net3"])
    target: str = "net4"
    zoo: ZooConfig = field(default_factory=ZooConfig)
    attacker: str = "reference"  # reference (Du et al.'s layer lists) | ours (a lighter CPU preset)
    attacker_width_divisor: int = 1
    meta: MetaTrainConfig = field(default_factory=MetaTrainConfig)
    # the controlled comparison: lazy and long differ only in the teacher's leap (same inner rule, lrs, k, data)
    lazy: MetaTrainConfig = field(default_factory=lambda: MetaTrainConfig(algorithm="lazy-reptile", steps=8))
    long: MetaTrainConfig = field(default_factory=lambda: MetaTrainConfig(steps=8))  # plain, at lazy's horizon
    teacher: LazyTeacher = field(default_factory=LazyTeacher)  # the lazy meta-attacker's leap, chosen on query MSE
    attack: AttackLoopConfig = field(default_factory=AttackLoopConfig)
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    seed: int = 0
    device: str = "auto"  # auto (CUDA when present) | cpu | cuda | cuda:N; every stage runs there

    def to_dict(self) -> dict:
        return as_dict(self)


def validate(config: AttackConfig) -> AttackConfig:
    """Reject settings that cannot run, naming the key (checks that need no data)."""
    from lazymeta.algorithms import ALGORITHMS
    from lazymeta.models.attack import ARCHITECTURES, CLASSIFIERS

    unknown = [m for m in config.methods if m not in METHODS]
    nets = [*config.whitebox, config.target]
    rules = [
        (not unknown, f"methods: unknown {unknown}; choose from {list(METHODS)}"),
        (config.data.dataset in DATASETS, f"data.dataset must be one of {DATASETS}, got {config.data.dataset!r}"),
        (all(n in CLASSIFIERS for n in nets), f"whitebox and target must be among {sorted(CLASSIFIERS)}, got {nets}"),
        (bool(config.whitebox), "whitebox: at least one white-box classifier is needed to meta-train on"),
        (config.attacker in ARCHITECTURES, f"attacker must be one of {sorted(ARCHITECTURES)}, got {config.attacker!r}"),
        (config.attacker_width_divisor >= 1, f"attacker_width_divisor must be >= 1, got {config.attacker_width_divisor}"),
    ]
    for section in SECTIONS:
        s: MetaTrainConfig = getattr(config, section)
        rules += [
            (s.algorithm in ALGORITHMS, f"{section}.algorithm must be one of {sorted(ALGORITHMS)}, got {s.algorithm!r}"),
            (s.algorithm not in ALGORITHMS or not getattr(ALGORITHMS[s.algorithm].outer, "entropy_weight", 0.0),
             f"{section}.algorithm {s.algorithm!r} adds an entropy term over class predictions, which a "
             "meta-attacker (it regresses gradient maps) does not make; choose reptile, lazy-reptile, fomaml, ..."),
            (s.algorithm not in ALGORITHMS or ALGORITHMS[s.algorithm].inner is None or s.inner == "sgd",
             f"{section}.algorithm {s.algorithm!r} runs its own inner rule, not Adam: set {section}.inner=sgd"),
            (s.inner in ("adam", "sgd"), f"{section}.inner must be adam or sgd, got {s.inner!r}"),
            (s.meta_optimizer in ("adam", "sgd"), f"{section}.meta_optimizer must be adam or sgd, got "
                                                  f"{s.meta_optimizer!r}"),
            (s.steps >= 0 and s.keep_last >= 1 and s.inner_lr > 0 and s.meta_lr > 0,
             f"{section} needs steps >= 0, keep_last >= 1, inner_lr > 0 and meta_lr > 0"),
            (s.support >= 1 and s.query >= 1, f"{section}.support and {section}.query must be >= 1"),
        ]
    a = config.attack
    rules += [(a.max_iterations >= 0 and a.coordinates >= 1 and a.finetune_interval >= 1,
               "attack needs max_iterations >= 0, coordinates >= 1 and finetune_interval >= 1")]
    check(rules)
    return config
