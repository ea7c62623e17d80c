"""``lazymeta longtail``: train on a long-tailed dataset with a (meta-)re-weighting method, print the report."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

COMMANDS = {"longtail": "train on a long-tailed dataset with a (meta-)re-weighting method"}
# flag -> dotted config key; a flag given on the command line overrides --config and --set
FLAGS = {"dataset": "data.dataset", "data_root": "data.root", "imbalance": "data.imbalance",
         "method": "method.name", "model": "model.name", "epochs": "schedule.epochs", "seed": "seed"}
# what a resumed run may change: its length and where it runs
RESUMABLE = {"schedule.epochs", "device", "eval_batch", "data.root"}


def add_parser(subparsers: argparse._SubParsersAction, command: str = "longtail") -> None:
    from lazymeta.infra.config import add_config_arguments
    from lazymeta.longtail.methods import METHODS

    p = subparsers.add_parser(command, help=COMMANDS[command])
    add_config_arguments(p, "configs/longtail/cifar100_lt_100.yaml", "method.steps=10")
    p.add_argument("--dataset", help="<dataset>-lt: cifar10-lt, cifar100-lt, mnist-lt, folder-lt (--data-root: a "
                                     "directory or zip with train/<class>/ and test/<class>/), or synthetic-lt "
                                     "(generated, for smoke runs)")
    p.add_argument("--imbalance", type=float, help="largest / smallest class size (default 100)")
    p.add_argument("--method", choices=sorted(METHODS), help="default: lazy-two-component")
    p.add_argument("--model", help="resnet32 (default) or small-cnn")
    p.add_argument("--epochs", type=int, help="training epochs (default 200)")
    p.add_argument("--seed", type=int, help="seed of the model, shuffling and augmentation")
    p.add_argument("--data-root", help="dataset directory (else $LAZYMETA_DATA, else ~/.cache/lazymeta)")
    p.add_argument("--out", help="run directory (default: runs/<dataset>-<imbalance>-<method>-s<seed>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a killed run from its last finished epoch (only "
                                                       "its length and device may change)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Train (or resume) one run and print its report."""
    from lazymeta.infra.config import compose, resumed, update
    from lazymeta.infra.rundir import CONFIG, RunDir
    from lazymeta.longtail.config import LongtailConfig
    from lazymeta.longtail.report import format_report
    from lazymeta.longtail.train import train

    if args.resume:
        run_dir = Path(args.resume)
        stored = update(LongtailConfig(), RunDir.read_config(run_dir), str(run_dir / CONFIG))
        config = resumed(stored, args, FLAGS, RESUMABLE)
    else:
        config = compose(LongtailConfig(), args, FLAGS)
        run_dir = Path(args.out or f"runs/{config.data.dataset}-{config.data.imbalance:g}-"
                                   f"{config.method.name}-s{config.seed}")
    results = train(config, run_dir, resume=bool(args.resume), progress=not args.quiet)
    print(json.dumps(results) if args.json else f"run directory: {run_dir}\n{format_report(results)}")
    return 0
