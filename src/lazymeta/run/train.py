"""The few-shot training loop, evaluation and loading of run directories.

A run directory holds ``config.yaml`` (resolved), ``metrics.jsonl``, ``state.pt`` (to resume),
``model.safetensors`` (the meta-parameters, with what is needed to use them) and ``results.json``.
Meta-batch t is a pure function of (seed, t), so a resumed run repeats an uninterrupted one exactly.
"""
from __future__ import annotations

import contextlib
import json
import platform
import time
from pathlib import Path

import torch
import yaml
from tqdm import tqdm

import lazymeta
from lazymeta.data import ImageTransform, load_split
from lazymeta.fewshot.episodes import EpisodeSampler
from lazymeta.fewshot.evaluate import evaluate
from lazymeta.learner import MetaLearner, NonFiniteLossError, Task
from lazymeta.models import build_model
from lazymeta.run import checkpoint as ckpt
from lazymeta.run.config import RunConfig, resolve, update
from lazymeta.run.distributed import World, join, my_share
from lazymeta.run.runtime import pick_device, seed_everything
from lazymeta.student import Student
from lazymeta.teacher import LazyTeacher

TRAIN_STREAM = 0


class TrainingError(RuntimeError):
    pass


def build_sampler(config: RunConfig, split: str, *, queries: int, seed: int) -> EpisodeSampler:
    d, e = config.data, config.episodes
    data = load_split(d.dataset, split, d.root, download=d.download, image_size=d.image_size)
    return EpisodeSampler(data, e.ways, e.shots, e.val_shots, queries, d.rotations, e.label_order, seed,
                          name=f"{d.dataset} split {split!r}")


def build_learner(config: RunConfig, transform: ImageTransform, device: torch.device) -> MetaLearner:
    a, o = config.algorithm, config.optim
    hidden = config.model.hidden or (64 if transform.size < 64 else 32)
    model = build_model(config.model.name, in_channels=transform.channels, image_size=transform.size,
                        ways=config.episodes.ways, hidden=hidden).to(device)
    optimizer_cls = torch.optim.Adam if o.name == "adam" else torch.optim.SGD
    student = Student(a.steps, a.inner_lr, a.keep_last)
    teacher = LazyTeacher(tuple(a.gammas), a.alpha_step, a.select, a.score_chunk, a.score_precision)
    learner = MetaLearner(model, a.name, student, teacher, optimizer_cls(model.parameters(), lr=o.lr),
                          a.test_leap, a.test_steps, config.task_threads, config.batch_tasks)
    learner.transform = transform
    return learner


def _meta_batch(sampler: EpisodeSampler, iteration: int, tasks: range) -> list[Task]:
    return [Task(*sampler.episode(TRAIN_STREAM, iteration, j)[:4]) for j in tasks]


def _environment() -> dict:
    return {"lazymeta": lazymeta.__version__, "torch": torch.__version__, "python": platform.python_version()}


def _save(run_dir: Path, learner: MetaLearner, iteration: int, config: RunConfig) -> None:
    ckpt.save_state(run_dir, {"learner": learner.state_dict(), "iteration": iteration,
                              "torch_rng": torch.get_rng_state()})
    leap = learner.mean_leap()
    ckpt.save_model(run_dir, dict(learner.model.named_parameters()), {
        "config": config.to_dict(), "transform": learner.transform.to_dict(), "iteration": iteration,
        "gamma": float(leap.gamma), "alpha": leap.alpha.tolist(), "leap_ema": learner.leap_ema.tolist(),
        "leap_count": learner.leap_count, "environment": _environment()})


def _truncate_metrics(path: Path, iteration: int) -> None:
    """Drop metric lines written after the checkpoint we resume from (the killed run's tail)."""
    if path.exists():
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        kept = [line for line in lines if json.loads(line)["iteration"] <= iteration]
        ckpt.write_text(path, "".join(line + "\n" for line in kept))


def train(config: RunConfig, run_dir: str | Path, resume: bool = False, progress: bool = True) -> MetaLearner:
    """Meta-train into ``run_dir`` (resuming from its checkpoint if ``resume``), then return the learner."""
    run_dir = Path(run_dir)
    config = resolve(config)
    world = join()
    if config.optim.meta_batch % world.size:
        raise TrainingError(f"optim.meta_batch={config.optim.meta_batch} must be a multiple of the "
                            f"{world.size} processes")
    seed_everything(config.seed)
    device = pick_device(config.device)
    sampler = build_sampler(config, config.data.train_split, queries=0, seed=config.seed)
    learner = build_learner(config, sampler.data.transform, device)
    start = 0
    if resume:
        state = ckpt.load_state(run_dir)
        learner.load_state_dict(state["learner"])
        torch.set_rng_state(state["torch_rng"])
        start = int(state["iteration"])
        if world.main:
            _truncate_metrics(run_dir / ckpt.METRICS, start)
    elif (run_dir / ckpt.STATE).exists():
        raise TrainingError(f"{run_dir} already holds a run; resume it with --resume or choose another --out")
    if world.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        ckpt.write_text(run_dir / ckpt.CONFIG, yaml.safe_dump(config.to_dict(), sort_keys=False))
    _loop(config, run_dir, learner, sampler, start, progress and world.main, world)
    return learner


def _loop(config: RunConfig, run_dir: Path, learner: MetaLearner, sampler: EpisodeSampler, start: int,
          progress: bool, world: World) -> None:
    o = config.optim
    tasks = my_share(world, o.meta_batch)
    bar = tqdm(range(start, config.iterations), initial=start, total=config.iterations, desc="meta-train",
               disable=None if progress else True)
    with open(run_dir / ckpt.METRICS, "a") if world.main else contextlib.nullcontext() as log:
        for t in bar:
            lr = o.lr + (o.lr_final - o.lr) * t / max(config.iterations, 1)
            for group in learner.optimizer.param_groups:
                group["lr"] = lr
            began = time.perf_counter()
            try:
                stats = learner.meta_step(_meta_batch(sampler, t, tasks))
            except NonFiniteLossError as err:
                raise TrainingError(f"iteration {t + 1}: {err}") from err
            if not world.main:
                continue
            if (t + 1) % config.log_every == 0 or t + 1 == config.iterations:
                record = {"iteration": t + 1, **stats, "lr": lr, "seconds": time.perf_counter() - began}
                log.write(json.dumps(record) + "\n")
                log.flush()
                bar.set_postfix({k: f"{v:.3f}" for k, v in stats.items()})
            if (t + 1) % config.checkpoint_every == 0 or t + 1 == config.iterations:
                _save(run_dir, learner, t + 1, config)
    if world.main and (config.iterations == 0 or start == config.iterations):
        _save(run_dir, learner, config.iterations, config)


def load_run(run_dir: str | Path, device: str | None = "cpu") -> tuple[MetaLearner, RunConfig]:
    """The meta-trained learner of a run directory (on ``device``, or the run's own device setting when
    None) and the resolved config it was trained with."""
    run_dir = Path(run_dir)
    weights, meta = ckpt.load_model(run_dir)
    config = update(RunConfig(), meta["config"], str(run_dir / ckpt.MODEL))
    learner = build_learner(config, ImageTransform(**meta["transform"]), pick_device(device or config.device))
    learner.model.load_state_dict(weights)
    learner.leap_ema = torch.tensor(meta["leap_ema"], dtype=torch.float64)
    learner.leap_count = int(meta["leap_count"])
    return learner, config


def load(run_dir: str | Path, device: str = "cpu") -> MetaLearner:
    """A meta-trained learner from a run directory: ``load(d).adapt(x, y).predict(q)``."""
    return load_run(run_dir, device)[0]


def evaluate_run(run_dir: str | Path, episodes: int | None = None, split: str | None = None,
                 test_leap: str | None = None, progress: bool = True, device: str | None = None) -> dict:
    """Mean accuracy ± 95% CI of a trained run on fixed test episodes; written to results.json. Runs
    on ``device``, by default the run's own setting (``auto``: the GPU when there is one)."""
    learner, config = load_run(run_dir, device)
    if test_leap is not None:
        learner.test_leap = test_leap
    split = split or config.data.test_split
    sampler = build_sampler(config, split, queries=config.episodes.queries, seed=config.seed)
    report = evaluate(learner, sampler, episodes or config.eval_episodes, progress=progress)
    report.update(dataset=config.data.dataset, split=split, algorithm=config.algorithm.name,
                  iterations=config.iterations)
    ckpt.write_text(Path(run_dir) / ckpt.RESULTS, json.dumps(report, indent=2) + "\n")
    return report
