"""``lazymeta attack ...``: the meta-attack stages from the command line, thin over :mod:`.pipeline`.

Add to ``lazymeta/cli.py``: ``attack_cli.add_parser(sub)`` in ``parser()`` and, in ``main``,
``if args.command == "attack": return attack_cli.run(args)``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lazymeta.run.config import ConfigError, add_config_arguments, compose

COMMANDS = {"train-zoo": "zoo", "train-attacker": "attackers", "run": "report"}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("attack", help="meta-attack: train the zoo and meta-attackers, attack a black box")
    sub = p.add_subparsers(dest="attack_command", required=True)
    helps = {"train-zoo": "train the white-box classifiers and the target",
             "train-attacker": "meta-train the meta-attackers (trains the zoo first if needed)",
             "run": "every stage up to Table 5 and the success/queries plot (cached stages are reused)"}
    for name, text in helps.items():
        q = sub.add_parser(name, help=text)
        add_config_arguments(q, "configs/attack/mnist-cpu.yaml", "attack.targeted=true")
        q.add_argument("--out", help="run directory (default: runs/attack-<dataset>-s<seed>)")
        q.add_argument("--quiet", action="store_true", help="no progress bars")


def build_config(args: argparse.Namespace):
    from lazymeta.attack.pipeline import AttackConfig

    return compose(AttackConfig(), args)


def run(args: argparse.Namespace) -> int:
    from lazymeta.attack.pipeline import run as run_pipeline

    try:
        config = build_config(args)
        run_dir = Path(args.out or f"runs/attack-{config.data.dataset}-s{config.seed}")
        report = run_pipeline(config, run_dir, COMMANDS[args.attack_command], progress=not args.quiet)
    except (ConfigError, ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"lazymeta attack {args.attack_command}: error: {err}", file=sys.stderr)
        return 2
    print(f"run directory: {run_dir}")
    if report:
        print((run_dir / "table.md").read_text(), end="")
        print(json.dumps(report))
    return 0
