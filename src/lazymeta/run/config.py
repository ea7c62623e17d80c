"""Typed run configuration: dataclasses as the schema, YAML files and dotted overrides at the edge.

Unknown keys and unconvertible values are errors that name the key, the value and where it came from.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lazymeta.teacher import DEFAULT_GAMMAS, SCORE_PRECISIONS


class ConfigError(ValueError):
    pass


@dataclass
class DataConfig:
    dataset: str = "glyphs"
    root: str | None = None  # else $LAZYMETA_DATA, else ~/.cache/lazymeta
    download: bool = False
    image_size: int | None = None  # null: the dataset's standard size (28 for glyphs and Omniglot, 84 for MiniImageNet)
    train_split: str = "train"
    val_split: str = "val"
    test_split: str = "test"
    # Multiples of 90 degrees, each a class of its own; null: (0, 90, 180, 270) for omniglot, (0,) otherwise.
    rotations: list[int] | None = None


@dataclass
class EpisodeConfig:
    ways: int = 5
    shots: int = 1
    val_shots: int = 1  # D_val per class during meta-training (the paper uses 1)
    queries: int = 15  # query images per class at evaluation
    label_order: str = "shuffled"  # or "global": the paper's non-i.i.d. mode


@dataclass
class ModelConfig:
    name: str = "conv4"
    hidden: int | None = None  # null: 64 filters below 64 px (Omniglot), 32 above (MiniImageNet), as in MAML


@dataclass
class AlgorithmConfig:
    name: str = "lazy-reptile"
    steps: int = 10  # k
    inner_lr: float = 0.1
    keep_last: int = 1  # b
    gammas: list[float] = field(default_factory=lambda: list(DEFAULT_GAMMAS))
    alpha_step: float = 0.05
    select: str = "loss"  # or "accuracy"
    score_precision: str = "float32"  # or "bfloat16": the teacher scores its candidates under autocast
    score_chunk: int | None = None  # candidates per vmapped scoring pass; null: 1 on a CPU, 128 on a GPU
    test_steps: int | None = None  # default: steps
    test_leap: str = "student"  # lazy algorithms only: student | mean | holdout


@dataclass
class OptimConfig:
    # null: Adam(1e-3) for the gradient rules, SGD(1.0 annealed linearly to 0) for the Reptile rules
    name: str | None = None
    lr: float | None = None
    lr_final: float | None = None
    meta_batch: int = 4


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    episodes: EpisodeConfig = field(default_factory=EpisodeConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    iterations: int = 1000
    seed: int = 0
    checkpoint_every: int = 100
    log_every: int = 10
    eval_episodes: int = 600
    device: str = "auto"
    task_threads: int = 1  # CPU only: run a meta-batch's tasks in this many threads (1 op thread each)
    # Run a meta-batch's tasks in one vmapped pass per step; null: on a GPU (1.5-2.3x faster there, 4-5x
    # the memory), not on a CPU (slower there). docs/performance.md has the measurements.
    batch_tasks: bool | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _coerce(value: Any, kind: Any, where: str) -> Any:
    """Convert a YAML/CLI value to the field's declared type, or raise a ConfigError naming it."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(kind)
        if value is None and type(None) in options:
            return None
        kind = next(k for k in options if k is not type(None))
        origin = typing.get_origin(kind)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(kind)
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if kind in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            number = float(value) if kind is float else int(value)
        except ValueError:
            raise ConfigError(f"{where}: expected {kind.__name__}, got {value!r}") from None
        if kind is int and isinstance(value, float) and value != int(value):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return number
    if kind is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    raise ConfigError(f"{where}: unsupported type {kind}")


def update(config: Any, values: dict, source: str) -> Any:
    """Apply a nested dict of overrides to a config dataclass (in place) and return it."""
    hints = typing.get_type_hints(type(config))
    for key, value in values.items():
        if key not in hints:
            raise ConfigError(f"{source}: unknown key {key!r} in {type(config).__name__}; "
                              f"known keys: {', '.join(hints)}")
        current = getattr(config, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: {key} must be a mapping, got {value!r}")
            update(current, value, f"{source}: {key}")
        else:
            setattr(config, key, _coerce(value, hints[key], f"{source}: {key}"))
    return config


def load_yaml(path: str | Path) -> dict:
    try:
        values = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings, got {type(values).__name__}")
    return values


def dotted(assignments: list[str]) -> dict:
    """``["algorithm.steps=20", ...]`` -> nested dict, values parsed as YAML scalars/lists."""
    out: dict = {}
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. algorithm.steps=20")
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(raw)
    return out


def add_config_arguments(parser: argparse.ArgumentParser, example_file: str, example_set: str) -> None:
    """The ``--config FILE`` and repeatable ``--set KEY=VALUE`` options every sub-command shares."""
    parser.add_argument("--config", help=f"YAML file of settings (e.g. {example_file})")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help=f"override one setting, e.g. --set {example_set} (repeatable)")


def compose(config: Any, args: argparse.Namespace, flags: dict[str, str] | None = None) -> Any:
    """Defaults, then ``--config``, then ``--set``, then the named flags (``{arg: dotted.key}``) given."""
    if args.config:
        update(config, load_yaml(args.config), args.config)
    update(config, dotted(args.set), "--set")
    given = {key: getattr(args, arg) for arg, key in (flags or {}).items() if getattr(args, arg) is not None}
    return update(config, dotted([f"{k}={json.dumps(v)}" for k, v in given.items()]), "command line")


def resolve(config: RunConfig) -> RunConfig:
    """Fill dataset- and algorithm-dependent defaults and validate what can be checked without data."""
    from lazymeta.algorithms import get_algorithm
    from lazymeta.fewshot.episodes import LABEL_ORDERS
    from lazymeta.learner import TEST_LEAPS

    try:
        algorithm = get_algorithm(config.algorithm.name)
    except ValueError as err:
        raise ConfigError(f"algorithm.name: {err}") from None
    if config.data.rotations is None:
        config.data.rotations = [0, 90, 180, 270] if config.data.dataset == "omniglot" else [0]
    reptile = algorithm.outer == "reptile"
    optim = config.optim
    optim.name = optim.name or ("sgd" if reptile else "adam")
    optim.lr = optim.lr if optim.lr is not None else (1.0 if reptile else 1e-3)
    if optim.lr_final is None:
        optim.lr_final = 0.0 if reptile and optim.name == "sgd" else optim.lr
    checks = [
        (optim.name in ("adam", "sgd"), f"optim.name must be adam or sgd, got {optim.name!r}"),
        (config.episodes.label_order in LABEL_ORDERS, f"episodes.label_order must be one of {LABEL_ORDERS}"),
        (config.algorithm.test_leap in TEST_LEAPS, f"algorithm.test_leap must be one of {TEST_LEAPS}"),
        (config.algorithm.select in ("loss", "accuracy"), "algorithm.select must be loss or accuracy"),
        (config.algorithm.score_precision in SCORE_PRECISIONS,
         f"algorithm.score_precision must be one of {SCORE_PRECISIONS}, got {config.algorithm.score_precision!r}"),
        (config.iterations >= 0, f"iterations must be >= 0, got {config.iterations}"),
        (config.checkpoint_every >= 1, f"checkpoint_every must be >= 1, got {config.checkpoint_every}"),
        (optim.meta_batch >= 1, f"optim.meta_batch must be >= 1, got {optim.meta_batch}"),
        (config.task_threads >= 1, f"task_threads must be >= 1, got {config.task_threads}"),
        (config.algorithm.score_chunk is None or config.algorithm.score_chunk >= 1,
         f"algorithm.score_chunk must be >= 1 or null, got {config.algorithm.score_chunk}"),
        (not (config.batch_tasks and config.task_threads > 1),
         "batch_tasks and task_threads > 1 are two ways to run a meta-batch's tasks; set one of them"),
        (config.algorithm.steps >= 0, f"algorithm.steps must be >= 0, got {config.algorithm.steps}"),
        (config.algorithm.inner_lr > 0, f"algorithm.inner_lr must be > 0, got {config.algorithm.inner_lr}"),
        (config.episodes.val_shots >= 1, "episodes.val_shots must be >= 1 (D_val drives the outer loss)"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    return config
