"""The meta-attack experiment as cached stages in one run directory: zoo -> attackers -> attacks -> report.

Every stage writes into a folder named by a hash of the settings it depends on (with those settings
beside it in ``key.json``), so rerunning with other attack settings reuses the trained zoo and
meta-attackers, and nothing stale is ever read back.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file
from torch import Tensor, nn

from lazymeta.attack.attack import AttackSettings, attack
from lazymeta.attack.gradients import input_gradients
from lazymeta.attack.metaattacker import (
    GradientTask,
    MetaTrainSettings,
    meta_train,
    prediction_mse,
)
from lazymeta.attack.report import plot, summary, table
from lazymeta.attack.zoo import ZooSettings, cached_classifier, correct, load_images
from lazymeta.models.attack import meta_attacker
from lazymeta.run.checkpoint import CONFIG, save_weights, write_text
from lazymeta.run.config import ConfigError
from lazymeta.run.runtime import pick_device

STAGES = ("zoo", "attackers", "attacks", "report")
# method name -> (attack method, meta-training section of the config or None)
METHODS = {"meta": ("meta", "meta"), "lazy-meta": ("meta", "lazy"), "zoo": ("zoo", None), "nes": ("nes", None)}


@dataclass
class DataSettings:
    dataset: str = "mnist"  # mnist | cifar10
    root: str | None = None  # else $LAZYMETA_DATA, else ~/.cache/lazymeta
    train_images: int = 0  # classifier training images, the first of the train split (0: all)
    gradient_images: int = 2000  # images per white-box task (the first of the train split)
    attack_images: int = 1000  # the first N test images the target classifies correctly


@dataclass
class AttackConfig:
    data: DataSettings = field(default_factory=DataSettings)
    whitebox: list[str] = field(default_factory=lambda: ["lenet5", "net2", "net3"])
    target: str = "net4"
    zoo: ZooSettings = field(default_factory=ZooSettings)
    attacker_width_divisor: int = 1
    meta: MetaTrainSettings = field(default_factory=MetaTrainSettings)
    lazy: MetaTrainSettings = field(default_factory=lambda: MetaTrainSettings(
        algorithm="lazy-reptile", inner="sgd", steps=8, inner_lr=0.3))
    attack: AttackSettings = field(default_factory=AttackSettings)
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    seed: int = 0
    device: str = "auto"  # auto (CUDA when present) | cpu | cuda | cuda:N; every stage runs there

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def check(config: AttackConfig) -> AttackConfig:
    unknown = [m for m in config.methods if m not in METHODS]
    if unknown:
        raise ConfigError(f"methods: unknown {unknown}; choose from {list(METHODS)}")
    if config.data.dataset not in ("mnist", "cifar10"):
        raise ConfigError(f"data.dataset must be mnist or cifar10, got {config.data.dataset!r}")
    return config


def _stage_dir(run_dir: Path, stage: str, key: dict) -> Path:
    text = json.dumps(key, sort_keys=True)
    directory = run_dir / stage / hashlib.sha256(text.encode()).hexdigest()[:10]
    if not (directory / "key.json").exists():
        write_text(directory / "key.json", json.dumps(key, indent=1, sort_keys=True) + "\n")
    return directory


def _zoo_key(c: AttackConfig) -> dict:
    return {"dataset": c.data.dataset, "train_images": c.data.train_images, "zoo": dataclasses.asdict(c.zoo),
            "seed": c.seed}


def _images(c: AttackConfig, split: str, limit: int = 0) -> tuple[Tensor, Tensor]:
    return tuple(t.to(pick_device(c.device)) for t in load_images(c.data.dataset, split, c.data.root, limit))


def train_zoo(c: AttackConfig, run_dir: Path, progress: bool = True) -> dict[str, nn.Module]:
    """The white-box models and the target, each trained once per zoo key (on any device: not in the key)."""
    directory = _stage_dir(run_dir, "zoo", _zoo_key(c))
    train: tuple[Tensor, Tensor] | None = None
    models = {}
    for i, name in enumerate([*c.whitebox, c.target]):
        if train is None and not (directory / f"{name}.safetensors").exists():
            train = _images(c, "train", c.data.train_images)
        generator = torch.Generator().manual_seed(c.seed * 1000 + i)
        models[name] = cached_classifier(directory, name, c.zoo, train, generator, pick_device(c.device), progress)
    return models


def gradient_tasks(c: AttackConfig, models: dict[str, nn.Module]) -> list[GradientTask]:
    """One task per white-box model: the images it classifies correctly and their normalised gradients."""
    images, labels = _images(c, "train", c.data.gradient_images)
    tasks = []
    for name in c.whitebox:
        ok = correct(models[name], images, labels)
        tasks.append(GradientTask(images[ok], input_gradients(models[name], images[ok], labels[ok])))
    return tasks


HELD_OUT_IMAGES = 500  # test images of the target on which a meta-attacker's gradient MSE is reported


def attack_set(c: AttackConfig, target: nn.Module, count: int | None = None) -> tuple[Tensor, Tensor]:
    """The first ``count`` (default ``attack_images``) test images the target classifies correctly."""
    images, labels = _images(c, "test")
    ok = torch.nonzero(correct(target, images, labels))[:c.data.attack_images if count is None else count, 0]
    return images[ok], labels[ok]


def train_attacker(c: AttackConfig, run_dir: Path, section: str, models: dict[str, nn.Module],
                   progress: bool = True) -> nn.Module:
    """A meta-attacker meta-trained with the ``meta`` or ``lazy`` settings (cached)."""
    settings: MetaTrainSettings = getattr(c, section)
    key = {"zoo": _zoo_key(c), "whitebox": c.whitebox, "gradient_images": c.data.gradient_images,
           "width_divisor": c.attacker_width_divisor, "settings": dataclasses.asdict(settings), "seed": c.seed}
    directory = _stage_dir(run_dir, "attackers", key)
    model = meta_attacker(c.data.dataset, c.attacker_width_divisor).to(pick_device(c.device))
    path = directory / "attacker.safetensors"
    if path.exists():
        model.load_state_dict(load_file(str(path)))
        return model
    torch.manual_seed(c.seed)
    tasks = gradient_tasks(c, models)
    history = meta_train(model, tasks, settings, torch.Generator().manual_seed(c.seed), progress)
    target = models[c.target]
    held, held_labels = attack_set(c, target, HELD_OUT_IMAGES)
    held_out = GradientTask(held, input_gradients(target, held, held_labels))
    write_text(directory / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in history))
    write_text(directory / "heldout.json", json.dumps({"target_gradient_mse": prediction_mse(model, held_out)}))
    save_weights(path, model.state_dict())
    return model


def run_attacks(c: AttackConfig, run_dir: Path, models: dict[str, nn.Module],
                attackers: dict[str, nn.Module], progress: bool = True) -> dict[str, dict]:
    """Every method on the same images (cached per method and settings); per-image results."""
    target = models[c.target]
    images, labels = attack_set(c, target)
    offsets = torch.randint(0, 9, labels.shape, generator=torch.Generator().manual_seed(c.seed))
    targets = (labels + 1 + offsets.to(labels.device)) % 10
    results = {}
    for name in c.methods:
        method, section = METHODS[name]
        key = {"zoo": _zoo_key(c), "target": c.target, "attack_images": c.data.attack_images, "method": name,
               "attack": dataclasses.asdict(c.attack), "seed": c.seed,
               "attacker": None if section is None else dataclasses.asdict(getattr(c, section))}
        path = _stage_dir(run_dir, "attacks", key) / "result.json"
        if not path.exists():
            if progress:
                print(f"attack: {name} on {len(images)} images", flush=True)
            r = attack(method, target, images, labels, c.attack, attackers.get(name), targets,
                       torch.Generator().manual_seed(c.seed + 1216))
            out = {k: getattr(r, k).tolist() for k in ("adversarial", "success", "l2", "queries")}
            write_text(path, json.dumps(out))
        results[name] = json.loads(path.read_text())
    return results


def run(c: AttackConfig, run_dir: Path, until: str = "report", progress: bool = True) -> dict:
    """Run the stages up to ``until`` (reusing cached ones); returns the summary of what was attacked."""
    check(c)
    write_text(run_dir / CONFIG, yaml.safe_dump(c.to_dict(), sort_keys=False))
    models = train_zoo(c, run_dir, progress)
    if until == "zoo":
        return {}
    sections = {name: METHODS[name][1] for name in c.methods if METHODS[name][1] is not None}
    attackers = {name: train_attacker(c, run_dir, section, models, progress) for name, section in sections.items()}
    if until == "attackers":
        return {}
    results = run_attacks(c, run_dir, models, attackers, progress)
    report = {name: summary(r) for name, r in results.items()}
    kind = "targeted" if c.attack.targeted else "untargeted"
    write_text(run_dir / "results.json", json.dumps(report, indent=1))
    write_text(run_dir / "table.md", table(results))
    plot(results, run_dir / "success_vs_queries.png", f"{c.data.dataset} {kind}, target {c.target}")
    return report
