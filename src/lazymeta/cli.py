"""``lazymeta`` command line: parse, build a config, call :mod:`lazymeta.run`. Nothing else lives here."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lazymeta.algorithms import ALGORITHMS
from lazymeta.attack import cli as attack_cli
from lazymeta.data import DATASETS, catalog
from lazymeta.longtail import cli as longtail_cli
from lazymeta.run.config import ConfigError, RunConfig, add_config_arguments, compose, load_yaml, update

# flag -> dotted config key; a flag given on the command line overrides --config and --set
FLAGS = {
    "dataset": "data.dataset", "data_root": "data.root", "algorithm": "algorithm.name", "ways": "episodes.ways",
    "shots": "episodes.shots", "steps": "algorithm.steps", "iterations": "iterations", "seed": "seed",
}


def _train_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="meta-train a few-shot learner into a run directory, then evaluate it")
    add_config_arguments(p, "a file written by `lazymeta config`", "algorithm.keep_last=3")
    p.add_argument("--dataset", choices=sorted(DATASETS), help="few-shot dataset (default: glyphs, embedded)")
    p.add_argument("--algorithm", choices=sorted(ALGORITHMS), help="meta-learner (default: lazy-reptile)")
    p.add_argument("--ways", type=int, help="N classes per task")
    p.add_argument("--shots", type=int, help="K training examples per class")
    p.add_argument("--steps", type=int, help="k, the student's SGD steps per task")
    p.add_argument("--iterations", type=int, help="meta-iterations")
    p.add_argument("--seed", type=int, help="seed of the model and of every episode")
    p.add_argument("--data-root", help="dataset directory (else $LAZYMETA_DATA, else ~/.cache/lazymeta)")
    p.add_argument("--out", help="run directory (default: runs/<dataset>-<algorithm>-<ways>w<shots>s-s<seed>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a killed run from its last checkpoint")
    p.add_argument("--episodes", type=int, help="test episodes after training (default: eval_episodes)")
    p.add_argument("--no-eval", action="store_true", help="skip the final evaluation")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _eval_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="mean accuracy ± 95%% CI of a trained run on fixed test episodes")
    p.add_argument("run_dir")
    p.add_argument("--episodes", type=int, help="number of test episodes (default: the run's eval_episodes)")
    p.add_argument("--split", help="dataset split (default: the run's test split)")
    p.add_argument("--test-leap", choices=("student", "mean", "holdout"), help="lazy algorithms: test-time leap")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: the run's device setting)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lazymeta", description="Long-horizon gradient-based meta-learning: "
                                "few-shot training and evaluation, long-tailed reweighting, meta-attacks, datasets.")
    sub = p.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    _eval_parser(sub)
    catalog.add_parser(sub)
    attack_cli.add_parser(sub)
    longtail_cli.add_parser(sub)
    sub.add_parser("config", help="print the default configuration as YAML")
    return p


def build_config(args: argparse.Namespace) -> RunConfig:
    return compose(RunConfig(), args, FLAGS)


def format_report(r: dict) -> str:
    rows = [("dataset / split", f"{r['dataset']} / {r['split']}"), ("algorithm", r["algorithm"]),
            ("task", f"{r['ways']}-way {r['shots']}-shot, {r['queries']} queries per class"),
            ("adaptation", f"{r['steps']} SGD steps, lr {r['inner_lr']}" +
             (f", test leap: {r['test_leap']}" if "test_leap" in r else "")),
            ("episodes", str(r["episodes"])),
            ("accuracy (transductive BN)", f"{r['transductive']['accuracy']:.2f} ± {r['transductive']['ci95']:.2f} %"),
            ("accuracy (support-set BN)", f"{r['support']['accuracy']:.2f} ± {r['support']['ci95']:.2f} %")]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _train(args: argparse.Namespace) -> None:
    from lazymeta.run.distributed import join
    from lazymeta.run.train import evaluate_run, train

    if args.resume:
        run_dir = Path(args.resume)
        config = update(RunConfig(), load_yaml(run_dir / "config.yaml"), str(run_dir / "config.yaml"))
        if args.iterations is not None:
            config.iterations = args.iterations
    else:
        config = build_config(args)
        run_dir = Path(args.out or f"runs/{config.data.dataset}-{config.algorithm.name}-"
                                   f"{config.episodes.ways}w{config.episodes.shots}s-s{config.seed}")
    train(config, run_dir, resume=bool(args.resume), progress=not args.quiet)
    if not join().main:  # under torchrun, rank 0 reports
        return
    print(f"run directory: {run_dir}")
    if not args.no_eval:
        print(format_report(evaluate_run(run_dir, args.episodes, progress=not args.quiet)))


def _eval(args: argparse.Namespace) -> None:
    from lazymeta.run.train import evaluate_run

    report = evaluate_run(args.run_dir, args.episodes, args.split, args.test_leap, progress=not args.quiet,
                          device=args.device)
    print(json.dumps(report) if args.json else format_report(report))


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "data":
        return catalog.run(args)
    if args.command == "attack":
        return attack_cli.run(args)
    if args.command == "longtail":
        return longtail_cli.run(args)
    try:
        if args.command == "train":
            _train(args)
        elif args.command == "eval":
            _eval(args)
        else:
            import yaml

            print(yaml.safe_dump(RunConfig().to_dict(), sort_keys=False), end="")
    except (ConfigError, ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"lazymeta {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
