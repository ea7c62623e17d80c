"""The meta-attack experiment as cached stages of one run directory: zoo -> attackers -> attacks -> report.

Every stage writes into a folder of the :class:`~lazymeta.infra.rundir.RunDir` named by a hash of the
settings it depends on (with those settings beside it in ``key.json``), so rerunning with other attack
settings reuses the trained zoo and meta-attackers, a killed run continues at its first unfinished stage,
and nothing stale is ever read back.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from torch import Tensor, nn

from lazymeta.algorithms import get_algorithm
from lazymeta.attack.config import METHODS, UNTRAINED, AttackConfig, validate
from lazymeta.attack.diagnostics import diagnose
from lazymeta.attack.gradients import input_gradients
from lazymeta.attack.loop import attack, target_classes
from lazymeta.attack.metaattacker import GradientTask, meta_train
from lazymeta.attack.report import plot, summary, table
from lazymeta.attack.zoo import cached_classifier, correct, load_images
from lazymeta.infra.config import as_dict
from lazymeta.infra.files import load_weights, save_weights, write_text
from lazymeta.infra.rundir import RESULTS, RunDir
from lazymeta.infra.runtime import pick_device
from lazymeta.models.attack import meta_attacker

HELD_OUT_IMAGES = 500  # test images of the target on which a meta-attacker's diagnostics are reported
UNTIL = ("zoo", "attackers", "report")
TARGET_RULE = "label + 1 mod 10"  # in the attack key: results cached under the earlier random targets are not reused


def _zoo_key(c: AttackConfig) -> dict:
    return {"dataset": c.data.dataset, "train_images": c.data.train_images, "zoo": dataclasses.asdict(c.zoo),
            "seed": c.seed}


def _images(c: AttackConfig, split: str, limit: int = 0) -> tuple[Tensor, Tensor]:
    return tuple(t.to(pick_device(c.device)) for t in load_images(c.data.dataset, split, c.data.root, limit))


def train_zoo(c: AttackConfig, run: RunDir, progress: bool = True) -> dict[str, nn.Module]:
    """The white-box models and the target, each trained once per zoo key (on any device: not in the key)."""
    directory = run.stage("zoo", _zoo_key(c))
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


def attack_set(c: AttackConfig, target: nn.Module, count: int | None = None) -> tuple[Tensor, Tensor]:
    """The first ``count`` (default ``attack_images``) test images the target classifies correctly."""
    images, labels = _images(c, "test")
    ok = torch.nonzero(correct(target, images, labels))[:c.data.attack_images if count is None else count, 0]
    return images[ok], labels[ok]


def _attacker_settings(c: AttackConfig, section: str) -> dict:
    """What a meta-attacker depends on beyond the zoo: its network, its section (none for the untrained one)
    and the teacher if its algorithm is lazy."""
    settings = {"architecture": c.attacker, "width_divisor": c.attacker_width_divisor}
    if section == UNTRAINED:
        return {**settings, "untrained": True}
    section_settings = getattr(c, section)
    settings.update(dataclasses.asdict(section_settings))
    if get_algorithm(section_settings.algorithm).lazy:
        settings["teacher"] = as_dict(c.teacher)
    return settings


def train_attacker(c: AttackConfig, run: RunDir, section: str, models: dict[str, nn.Module],
                   progress: bool = True) -> tuple[nn.Module, dict]:
    """A meta-attacker meta-trained with section ``meta``, ``lazy`` or ``long`` of the config, or the untrained
    one (cached), and the diagnostics of its unadapted prediction on the held-out target.

    Every meta-attacker starts from the same initialisation (drawn from the seed), which is the untrained
    attacker itself, and draws the same support and query images: the rows differ only in meta-training.
    """
    key = {"zoo": _zoo_key(c), "whitebox": c.whitebox, "gradient_images": c.data.gradient_images,
           "settings": _attacker_settings(c, section), "seed": c.seed}
    directory = run.stage("attackers", key)
    torch.manual_seed(c.seed)
    model = meta_attacker(c.data.dataset, c.attacker_width_divisor, c.attacker).to(pick_device(c.device))
    path, heldout = directory / "attacker.safetensors", directory / "heldout.json"
    if path.exists() and heldout.exists():
        model.load_state_dict(load_weights(path, "meta-attacker")[0])
        return model, json.loads(heldout.read_text())
    history = []
    if section != UNTRAINED:
        history = meta_train(model, gradient_tasks(c, models), getattr(c, section),
                             torch.Generator().manual_seed(c.seed), progress, c.teacher)
    target = models[c.target]
    held, held_labels = attack_set(c, target, HELD_OUT_IMAGES)
    diagnostics = diagnose(model, GradientTask(held, input_gradients(target, held, held_labels)), c.attack.coordinates)
    gammas = [h["gamma"] for h in history if "gamma" in h]
    if gammas:
        diagnostics["gamma"] = sum(gammas) / len(gammas)
    write_text(directory / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in history))
    save_weights(path, model.state_dict())
    write_text(heldout, json.dumps(diagnostics))
    return model, diagnostics


def run_attacks(c: AttackConfig, run: RunDir, models: dict[str, nn.Module],
                attackers: dict[str, nn.Module], progress: bool = True) -> dict[str, dict]:
    """Every method on the same images (cached per method and settings); per-image results."""
    target = models[c.target]
    images, labels = attack_set(c, target)
    targets = target_classes(labels)
    results = {}
    for name in c.methods:
        method, section = METHODS[name]
        key = {"zoo": _zoo_key(c), "target": c.target, "attack_images": c.data.attack_images, "method": name,
               "attack": dataclasses.asdict(c.attack), "seed": c.seed,
               "attacker": None if section is None else _attacker_settings(c, section),
               "targets": TARGET_RULE if c.attack.targeted else None}
        path = run.stage("attacks", key) / "result.json"
        if not path.exists():
            if progress:
                print(f"attack: {name} on {len(images)} images", flush=True)
            r = attack(method, target, images, labels, c.attack, attackers.get(name), targets,
                       torch.Generator().manual_seed(c.seed + 1216))
            out = {k: getattr(r, k).tolist() for k in ("adversarial", "success", "l2", "queries")}
            write_text(path, json.dumps(out))
        results[name] = json.loads(path.read_text())
    return results


def train(c: AttackConfig, run_dir: str | Path, until: str = "report", progress: bool = True,
          per_image: bool = False) -> dict:
    """Run the stages up to ``until`` (reusing cached ones); returns the summary of what was attacked (with
    each method's per-image success, L2 and queries under ``per_image`` when asked, for paired comparisons)."""
    validate(c)
    if until not in UNTIL:
        raise ValueError(f"until must be one of {UNTIL}, got {until!r}")
    run = RunDir(run_dir)
    with run.open(c.to_dict(), existing="reuse"):
        models = train_zoo(c, run, progress)
        if until == "zoo":
            return {}
        sections = {name: METHODS[name][1] for name in c.methods if METHODS[name][1] is not None}
        trained = {name: train_attacker(c, run, section, models, progress) for name, section in sections.items()}
        if until == "attackers":
            return {}
        results = run_attacks(c, run, models, {name: model for name, (model, _) in trained.items()}, progress)
        report = {name: summary(r) for name, r in results.items()}
        for name, (_, diagnostics) in trained.items():
            report[name]["diagnostics"] = diagnostics
        if per_image:
            for name, r in results.items():
                report[name]["per_image"] = {k: r[k] for k in ("success", "l2", "queries")}
        kind = "targeted" if c.attack.targeted else "untargeted"
        run.write_json(RESULTS, report)
        write_text(run.file("table.md"), table(results))
        plot(results, run.file("success_vs_queries.png"), f"{c.data.dataset} {kind}, target {c.target}")
        return report
