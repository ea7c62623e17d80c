"""Runs a reproduction's grid: every run in its own run directory under ``OUT/runs/``, finished ones reused,
killed ones resumed, several at a time in processes of one op thread each (or in this process)."""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from lazymeta.infra.errors import TrainingError
from lazymeta.infra.files import write_json
from lazymeta.infra.rundir import RESULTS, STATE, RunDir
from lazymeta.reproduce.spec import Run


def run_dir(out: Path, run: Run) -> Path:
    return out / "runs" / run.key


def finished(out: Path, run: Run) -> dict | None:
    """The run's results if it has finished with its current settings, else None."""
    path = run_dir(out, run) / RESULTS
    if not path.exists():
        return None
    results = json.loads(path.read_text())
    expected = run.config.get("eval_episodes")
    if expected is not None and results.get("episodes", expected) != expected:
        return None
    return {**results, **_meta_step_ms(path.parent)} if run.app == "fewshot" else results


def _meta_step_ms(directory: Path) -> dict[str, float]:
    """``meta_step_ms``: the median of a few-shot run's logged meta-step times (none for 0 iterations)."""
    seconds = [r["seconds"] for r in RunDir(directory).metrics() if "seconds" in r]
    return {"meta_step_ms": 1000 * statistics.median(seconds)} if seconds else {}


def execute(out: Path, runs: list[Run], jobs: int = 1, progress: bool = True) -> dict[str, dict]:
    """Every run's results (key -> results.json), running those that have not finished.

    ``jobs`` > 1 runs that many at a time, each in a ``lazymeta`` process with one op thread (unless
    OMP_NUM_THREADS says otherwise); ``jobs == 1`` runs them one by one in this process. Measurements of
    time (``measure`` runs) and attack runs (which share their zoo and meta-attackers, see
    :func:`attack_dir`) always run alone, one after the other, in this process.
    """
    pending = [r for r in runs if finished(out, r) is None]
    if progress:
        print(f"reproduce: {len(runs) - len(pending)} of {len(runs)} runs already finished in {out}", flush=True)
    done = {"count": 0}

    def one(run: Run) -> None:
        began = time.perf_counter()
        (_in_process if jobs == 1 or run.app in ALONE else _subprocess)(out, run)
        done["count"] += 1
        if progress:
            print(f"reproduce: [{done['count']}/{len(pending)}] {run.key} finished in "
                  f"{(time.perf_counter() - began) / 60:.1f} min", flush=True)

    alone = [r for r in pending if jobs == 1 or r.app in ALONE]
    if len(alone) < len(pending):
        with ThreadPoolExecutor(jobs) as pool:
            list(pool.map(one, [r for r in pending if r not in alone]))
    for run in alone:
        one(run)
    return {r.key: finished(out, r) for r in runs}


# application -> its ``lazymeta`` command (a run in a subprocess)
COMMANDS = {"fewshot": "train", "longtail": "longtail"}
ALONE = ("measure", "attack")  # applications whose runs always run in this process, one after the other


def attack_dir(out: Path, dataset: str, seed: int) -> Path:
    """The ``lazymeta attack`` run directory that every attack run of ``dataset`` and ``seed`` shares: its
    stages are cached by their settings, so the zoo and meta-attackers are trained once for all rows and
    for the untargeted and targeted columns."""
    return out / "attack" / f"{dataset}-s{seed}"


def _in_process(out: Path, run: Run) -> None:
    from lazymeta.infra.config import update

    directory = run_dir(out, run)
    resume = (directory / STATE).exists()
    if run.app == "measure":
        from lazymeta.reproduce.memory import measure

        write_json(directory / RESULTS, measure(run.config))
    elif run.app == "fewshot":
        from lazymeta.fewshot.config import FewShotConfig
        from lazymeta.fewshot.train import evaluate_run, train

        train(update(FewShotConfig(), run.config, f"reproduce run {run.key}"), directory, resume=resume, progress=False)
        evaluate_run(directory, progress=False)
    elif run.app == "longtail":
        from lazymeta.longtail.config import LongtailConfig
        from lazymeta.longtail.train import train as train_longtail

        train_longtail(update(LongtailConfig(), run.config, f"reproduce run {run.key}"), directory, resume=resume,
                       progress=False)
    elif run.app == "attack":
        from lazymeta.attack.config import AttackConfig
        from lazymeta.attack.train import train as train_attack

        config = update(AttackConfig(), run.config, f"reproduce run {run.key}")
        (method,) = config.methods
        report = train_attack(config, attack_dir(out, config.data.dataset, config.seed), progress=False,
                              per_image=True)
        write_json(directory / RESULTS, report[method])
    else:
        raise ValueError(f"unknown application {run.app!r} of run {run.key}; known: {', '.join(ALONE)}, "
                         f"{', '.join(COMMANDS)}")


def _subprocess(out: Path, run: Run) -> None:
    directory = run_dir(out, run)
    spec = out / "specs" / f"{run.key.replace('/', '__')}.yaml"
    spec.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text(yaml.safe_dump(run.config, sort_keys=False))
    command = [sys.executable, "-m", "lazymeta", COMMANDS[run.app], "--quiet"]
    command += ["--resume", str(directory)] if (directory / STATE).exists() else ["--config", str(spec),
                                                                                  "--out", str(directory)]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    log = out / "logs" / f"{run.key.replace('/', '__')}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as f:
        code = subprocess.run(command, stdout=f, stderr=subprocess.STDOUT, env=env).returncode
    if code != 0:
        tail = log.read_text().strip().splitlines()[-1:] or ["(no output)"]
        raise TrainingError(f"run {run.key} failed (exit {code}): {tail[0]}; full log: {log}")
