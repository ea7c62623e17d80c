"""``lazymeta attack ...``: the meta-attack stages from the command line, thin over :mod:`.train`."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

COMMANDS = {"attack": "meta-attack: train the zoo and meta-attackers, attack a black box"}
# sub-command -> the last stage it runs
STAGES = {"train-zoo": "zoo", "train-attacker": "attackers", "run": "report"}
HELPS = {"train-zoo": "train the white-box classifiers and the target",
         "train-attacker": "meta-train the meta-attackers (trains the zoo first if needed)",
         "run": "every stage up to Table 5 and the success/queries plot (cached stages are reused)"}


def add_parser(subparsers: argparse._SubParsersAction, command: str = "attack") -> None:
    from lazymeta.infra.config import add_config_arguments

    p = subparsers.add_parser(command, help=COMMANDS[command])
    sub = p.add_subparsers(dest="attack_command", required=True)
    for name, text in HELPS.items():
        q = sub.add_parser(name, help=text)
        add_config_arguments(q, "configs/attack/mnist-cpu.yaml", "attack.targeted=true")
        q.add_argument("--out", help="run directory (default: runs/attack-<dataset>-s<seed>)")
        q.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from lazymeta.attack.config import AttackConfig
    from lazymeta.attack.train import train
    from lazymeta.infra.config import compose

    config = compose(AttackConfig(), args)
    run_dir = Path(args.out or f"runs/attack-{config.data.dataset}-s{config.seed}")
    report = train(config, run_dir, STAGES[args.attack_command], progress=not args.quiet)
    print(f"run directory: {run_dir}")
    if report:
        print((run_dir / "table.md").read_text(), end="")
        print(json.dumps(report))
    return 0
