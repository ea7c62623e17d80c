"""Typed configuration: dataclasses as the schema, YAML files and dotted overrides at the edge.

Every application's config is a tree of dataclasses (a frozen one, such as the core's ``LazyTeacher``, may
be a section: it is rebuilt, so its own checks run). Unknown keys and unconvertible values are errors that
name the key, the value and where it came from.
"""
from __future__ import annotations

import argparse
import collections.abc
import copy
import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from lazymeta.infra.errors import ConfigError

__all__ = ["ConfigError", "add_config_arguments", "as_dict", "check", "compose", "dotted", "flatten", "load_yaml",
           "resumed", "update"]


def _coerce(value: Any, kind: Any, where: str) -> Any:
    """Convert a YAML/CLI value to the field's declared type, or raise a ConfigError naming it."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(kind)
        if value is None and type(None) in options:
            return None
        kind = next(k for k in options if k is not type(None))
        origin = typing.get_origin(kind)
    if origin in (list, tuple, collections.abc.Sequence):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item = typing.get_args(kind)[0]
        items = [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
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
        if kind is float and number != number:
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return number
    if kind is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    raise ConfigError(f"{where}: unsupported type {kind}")


def update(config: Any, values: dict, source: str) -> Any:
    """The config dataclass with a nested dict of overrides applied (in place, except for frozen sections,
    which are rebuilt so that their own validation runs)."""
    hints = typing.get_type_hints(type(config))
    changes = {}
    for key, value in values.items():
        if key not in hints:
            raise ConfigError(f"{source}: unknown key {key!r} in {type(config).__name__}; "
                              f"known keys: {', '.join(hints)}")
        current = getattr(config, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: {key} must be a mapping, got {value!r}")
            changes[key] = update(current, value, f"{source}: {key}")
        else:
            changes[key] = _coerce(value, hints[key], f"{source}: {key}")
    if type(config).__dataclass_params__.frozen:
        try:
            return dataclasses.replace(config, **changes)
        except (ValueError, TypeError) as err:
            raise ConfigError(f"{source}: {err}") from None
    for key, value in changes.items():
        setattr(config, key, value)
    return config


def as_dict(config: Any) -> dict:
    """The config as plain YAML-safe containers (tuples become lists)."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return plain(dataclasses.asdict(config))


def load_yaml(path: str | Path) -> dict:
    try:
        values = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory; give a YAML file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not a text file (not UTF-8); give a YAML file such as one "
                          "written by `lazymeta config`") from None
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
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {part} is set to a value and a section at once")
        try:
            node[leaf] = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML ({err.problem})") from None
    return out


def add_config_arguments(parser: argparse.ArgumentParser, example_file: str, example_set: str) -> None:
    """The ``--config FILE`` and repeatable ``--set KEY=VALUE`` options every sub-command shares."""
    parser.add_argument("--config", help=f"YAML file of settings (e.g. {example_file})")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help=f"override one setting, e.g. --set {example_set} (repeatable)")


def compose(config: Any, args: argparse.Namespace, flags: dict[str, str] | None = None) -> Any:
    """Defaults, then ``--config``, then ``--set``, then the named flags (``{arg: dotted.key}``) given."""
    if args.config:
        config = update(config, load_yaml(args.config), args.config)
    config = update(config, dotted(args.set), "--set")
    given = {key: getattr(args, arg) for arg, key in (flags or {}).items() if getattr(args, arg) is not None}
    return update(config, dotted([f"{k}={json.dumps(v)}" for k, v in given.items()]), "command line")


def check(rules: list[tuple[bool, str]]) -> None:
    """Raise a ConfigError with the message of the first rule that does not hold."""
    for ok, message in rules:
        if not ok:
            raise ConfigError(message)


def flatten(values: dict, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def resumed(stored: Any, args: argparse.Namespace, flags: dict[str, str], may_change: set[str]) -> Any:
    """A run's stored config with the command line applied, for a resume: settings in ``may_change`` (speed
    and length only) are applied, any other change is refused, naming each and the fix."""
    before = flatten(as_dict(stored))
    config = compose(copy.deepcopy(stored), args, flags)
    changed = {k: (before[k], v) for k, v in flatten(as_dict(config)).items() if before.get(k) != v}
    refused = {k: change for k, change in changed.items() if k not in may_change}
    if refused:
        listed = ", ".join(f"{k} ({a!r} -> {b!r})" for k, (a, b) in refused.items())
        raise ConfigError(f"--resume continues the run as it was configured; {listed} would change what it computes. "
                          f"Start a new run (another --out) for that. On resume only these may change: "
                          f"{', '.join(sorted(may_change))}")
    return config
