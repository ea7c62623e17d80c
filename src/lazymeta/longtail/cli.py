"""``lazymeta longtail``: parse, build a :class:`LongtailConfig`, train, print the report."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lazymeta.longtail.config import LongtailConfig
from lazymeta.longtail.methods import METHODS
from lazymeta.run.config import ConfigError, add_config_arguments, compose, load_yaml, update

# flag -> dotted config key; a flag given on the command line overrides --config and --set
FLAGS = {"dataset": "data.dataset", "data_root": "data.root", "imbalance": "data.imbalance",
         "method": "method.name", "model": "model.name", "epochs": "schedule.epochs", "seed": "seed"}


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("longtail", help="train on a long-tailed dataset with a (meta-)re-weighting method")
    add_config_arguments(p, "configs/longtail/cifar100_lt_100.yaml", "method.steps=10")
    p.add_argument("--dataset", help="<dataset>-lt: cifar10-lt, cifar100-lt, mnist-lt, or folder-lt "
                                     "(--data-root: a directory or zip with train/<class>/ and test/<class>/)")
    p.add_argument("--imbalance", type=float, help="largest / smallest class size (default 100)")
    p.add_argument("--method", choices=sorted(METHODS), help="default: lazy-two-component")
    p.add_argument("--model", help="resnet32 (default) or small-cnn")
    p.add_argument("--epochs", type=int, help="training epochs (default 200)")
    p.add_argument("--seed", type=int, help="seed of the model, shuffling and augmentation")
    p.add_argument("--data-root", help="dataset directory (else $LAZYMETA_DATA, else ~/.cache/lazymeta)")
    p.add_argument("--out", help="run directory (default: runs/<dataset>-<imbalance>-<method>-s<seed>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a killed run from its last finished epoch")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def build_config(args: argparse.Namespace) -> LongtailConfig:
    return compose(LongtailConfig(), args, FLAGS)


def format_report(r: dict) -> str:
    def line(label: str, result: dict | None) -> str:
        if result is None:
            return f"{label:<30}  n/a (no validation set: the test set never chooses the epoch)"
        groups = ", ".join(f"{k} {100 * g['accuracy']:.1f}% ({g['classes']})" if g["accuracy"] is not None
                           else f"{k} - (0)" for k, g in result["groups"].items())
        return f"{label:<30}  {result['error']:.2f}   [{groups}]"

    head = (f"{r['method']} on {r['dataset']}, imbalance {r['imbalance']:g} (real {r['real_imbalance']:.1f}), "
            f"{sum(r['train_counts'])} training images, {r['test_images']} test images, seed {r['seed']}")
    return "\n".join([head, f"{'':<30}  top-1 error %  [group accuracy (classes); {r['shot_thresholds']}]",
                      line(f"final epoch ({r['final']['epoch']})", r["final"]),
                      line(f"best validation epoch ({r['best']['epoch'] if r['best'] else '-'})", r["best"])])


def run(args: argparse.Namespace) -> int:
    """Train (or resume) one run and print its report; 2 on a configuration or data error."""
    from lazymeta.longtail.train import train

    try:
        if args.resume:
            run_dir = Path(args.resume)
            config = update(LongtailConfig(), load_yaml(run_dir / "config.yaml"), str(run_dir / "config.yaml"))
            if args.epochs is not None:
                config.schedule.epochs = args.epochs
        else:
            config = build_config(args)
            run_dir = Path(args.out or f"runs/{config.data.dataset}-{config.data.imbalance:g}-"
                                       f"{config.method.name}-s{config.seed}")
        results = train(config, run_dir, resume=bool(args.resume), progress=not args.quiet)
    except (ConfigError, ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"lazymeta longtail: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(results) if args.json else f"run directory: {run_dir}\n{format_report(results)}")
    return 0
