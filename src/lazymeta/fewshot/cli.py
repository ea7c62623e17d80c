"""``lazymeta train``, ``lazymeta eval`` and ``lazymeta config``: the few-shot application's command line."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

COMMANDS = {
    "train": "meta-train a few-shot learner into a run directory, then evaluate it",
    "eval": "mean accuracy ± 95%% CI of a trained run on fixed test episodes",
    "config": "print the default few-shot configuration as YAML",
}
# flag -> dotted config key; a flag given on the command line overrides --config and --set
FLAGS = {
    "dataset": "data.dataset", "data_root": "data.root", "algorithm": "algorithm.name", "ways": "episodes.ways",
    "shots": "episodes.shots", "steps": "algorithm.steps", "iterations": "iterations", "seed": "seed",
    "episodes": "eval_episodes",
}
# what a resumed run may change: its length, and how fast it runs (threads, device, batching, scoring chunks)
RESUMABLE = {"iterations", "device", "threads", "task_threads", "batch_tasks", "teacher.chunk", "checkpoint_every",
             "log_every", "eval_episodes", "eval_untrained", "data.root"}


def add_parser(sub: argparse._SubParsersAction, command: str) -> None:
    from lazymeta.algorithms import ALGORITHMS
    from lazymeta.data import DATASETS
    from lazymeta.infra.config import add_config_arguments
    from lazymeta.learner import TEST_LEAPS

    p = sub.add_parser(command, help=COMMANDS[command])
    if command == "train":
        add_config_arguments(p, "a file written by `lazymeta config`", "algorithm.keep_last=3")
        p.add_argument("--dataset", choices=sorted(DATASETS), help="few-shot dataset (default: glyphs, embedded)")
        p.add_argument("--algorithm", choices=sorted(ALGORITHMS), help="meta-learner (default: lazy-maml)")
        p.add_argument("--ways", type=int, help="N classes per task")
        p.add_argument("--shots", type=int, help="K training examples per class")
        p.add_argument("--steps", type=int, help="k, the student's SGD steps per task")
        p.add_argument("--iterations", type=int, help="meta-iterations")
        p.add_argument("--seed", type=int, help="seed of the model and of every episode")
        p.add_argument("--data-root", help="dataset directory (else $LAZYMETA_DATA, else ~/.cache/lazymeta)")
        p.add_argument("--out", help="run directory (default: runs/<dataset>-<algorithm>-<ways>w<shots>s-s<seed>)")
        p.add_argument("--resume", metavar="RUN_DIR", help="continue a killed run from its last checkpoint (only "
                       "its length and speed settings may change)")
        p.add_argument("--continue", dest="continue_", action="store_true",
                       help="resume --out if it holds a checkpoint of this run, else start it")
        p.add_argument("--episodes", type=int, help="test episodes after training (default: eval_episodes)")
        p.add_argument("--no-eval", action="store_true", help="skip the final evaluation")
        p.add_argument("--quiet", action="store_true", help="no progress bars")
    elif command == "eval":
        p.add_argument("run_dir")
        p.add_argument("--episodes", type=int, help="number of test episodes (default: the run's eval_episodes)")
        p.add_argument("--split", help="dataset split (default: the run's test split)")
        p.add_argument("--test-leap", choices=TEST_LEAPS, help="lazy algorithms: test-time leap")
        p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
        p.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: the run's device setting)")
        p.add_argument("--untrained", action="store_true", help="also the untrained start, on the same episodes")
        p.add_argument("--quiet", action="store_true", help="no progress bars")


def format_report(r: dict) -> str:
    rows = [("dataset / split", f"{r['dataset']} / {r['split']}"), ("algorithm", r["algorithm"]),
            ("task", f"{r['ways']}-way {r['shots']}-shot, {r['queries']} queries per class"),
            ("adaptation", f"{r['steps']} SGD steps, lr {r['inner_lr']}" +
             (f", test leap: {r['test_leap']}" if "test_leap" in r else "")),
            ("episodes", str(r["episodes"])),
            ("accuracy (transductive BN)", f"{r['transductive']['accuracy']:.2f} ± {r['transductive']['ci95']:.2f} %"),
            ("accuracy (support-set BN)", f"{r['support']['accuracy']:.2f} ± {r['support']['ci95']:.2f} %")]
    if "untrained" in r:  # the same episodes from the untrained start: what meta-training bought
        u = r["untrained"]
        rows += [("untrained start (transductive BN)", f"{u['transductive']['accuracy']:.2f} ± "
                                                      f"{u['transductive']['ci95']:.2f} %"),
                 ("untrained start (support-set BN)", f"{u['support']['accuracy']:.2f} ± {u['support']['ci95']:.2f} %")]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def run(args: argparse.Namespace) -> int:
    if args.command == "train":
        _train(args)
    elif args.command == "eval":
        _eval(args)
    else:
        import yaml

        from lazymeta.fewshot.config import FewShotConfig

        print(yaml.safe_dump(FewShotConfig().to_dict(), sort_keys=False), end="")
    return 0


def _train(args: argparse.Namespace) -> None:
    from lazymeta.fewshot.config import FewShotConfig, validate
    from lazymeta.fewshot.train import evaluate_run, train
    from lazymeta.infra.config import compose, flatten, resumed, update
    from lazymeta.infra.distributed import launched
    from lazymeta.infra.errors import ConfigError
    from lazymeta.infra.rundir import CONFIG, STATE, RunDir

    if args.resume and (args.out or args.continue_):
        raise ConfigError("--resume RUN_DIR names the run; give neither --out nor --continue with it")
    if args.resume:
        run_dir = Path(args.resume)
        stored = update(FewShotConfig(), RunDir.read_config(run_dir), str(run_dir / CONFIG))
        config = resumed(stored, args, FLAGS, RESUMABLE)
    else:
        config = validate(compose(FewShotConfig(), args, FLAGS))
        run_dir = Path(args.out or f"runs/{config.data.dataset}-{config.algorithm.name}-"
                                   f"{config.episodes.ways}w{config.episodes.shots}s-s{config.seed}")
        if args.continue_ and (run_dir / STATE).exists():
            stored = update(FewShotConfig(), RunDir.read_config(run_dir), str(run_dir / CONFIG))
            changed = sorted(k for k, v in flatten(config.to_dict()).items()
                             if flatten(stored.to_dict()).get(k) != v and k not in RESUMABLE)
            if changed:
                raise ConfigError(f"--continue: {run_dir} holds another run (it differs in {', '.join(changed)}); "
                                  "choose another --out")
            args.resume = str(run_dir)
    train(config, run_dir, resume=bool(args.resume), progress=not args.quiet)
    if not launched().main:  # under torchrun, rank 0 reports
        return
    print(f"run directory: {run_dir}")
    if not args.no_eval:
        print(format_report(evaluate_run(run_dir, config.eval_episodes, progress=not args.quiet,
                                         untrained=config.eval_untrained)))


def _eval(args: argparse.Namespace) -> None:
    from lazymeta.fewshot.train import eval_file, evaluate_run

    report = evaluate_run(args.run_dir, args.episodes, args.split, args.test_leap, progress=not args.quiet,
                          device=args.device, untrained=args.untrained, write_to=None)
    print(json.dumps(report) if args.json else format_report(report))
    if not args.json:
        print(f"written to {Path(args.run_dir) / eval_file(report['split'], report['episodes'], args.test_leap)}")
