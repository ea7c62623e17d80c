"""The few-shot training loop, evaluation and loading of run directories.

A run directory (:class:`~lazymeta.infra.rundir.RunDir`) holds ``config.yaml`` (resolved), ``metrics.jsonl``,
``state.pt`` (to resume), ``model.safetensors`` (the meta-parameters, with what is needed to use them) and
``results.json``. Meta-batch t is a pure function of (seed, t), so a resumed run repeats an uninterrupted
one exactly.
"""
from __future__ import annotations

import json
import platform
import time
import warnings
from pathlib import Path

import torch

from lazymeta._version import __version__
from lazymeta.data import ImageTransform, load_split
from lazymeta.fewshot.config import FewShotConfig, configured_algorithm, validate
from lazymeta.fewshot.episodes import EpisodeSampler
from lazymeta.fewshot.evaluate import evaluate
from lazymeta.infra.config import update
from lazymeta.infra.distributed import World, joined, my_share
from lazymeta.infra.errors import TrainingError
from lazymeta.infra.files import load_weights, save_weights
from lazymeta.infra.interrupt import Interrupted, StopRequest, stop_on_signal
from lazymeta.infra.progress import progress
from lazymeta.infra.rundir import RESULTS, RunDir
from lazymeta.infra.runtime import cpu_threads, keep_freed_memory, pick_device, seed_everything, set_op_threads
from lazymeta.learner import MetaLearner, NonFiniteLossError, Task
from lazymeta.models import build_model
from lazymeta.student import build_student

TRAIN_STREAM = 0
MODEL = "model.safetensors"
# Second-order MAML keeps every student step in its autograd graph; above this k it is worth a word.
MAML_STEPS_WARNING = 20


class GraphMemoryWarning(UserWarning):
    """A setting whose memory grows with the inner loop's length."""


def build_sampler(config: FewShotConfig, split: str, *, seed: int, train: bool) -> EpisodeSampler:
    """Episodes of ``split``: for meta-training (``train_shots`` and D_val, no queries) or for evaluation
    (``shots`` and queries, no D_val: test episodes do not depend on the training protocol)."""
    d, e = config.data, config.episodes
    data = load_split(d.dataset, split, d.root, download=d.download, image_size=d.image_size)
    shots, val_shots, queries = (e.train_shots or e.shots, e.val_shots, 0) if train else (e.shots, 0, e.queries)
    return EpisodeSampler(data, e.ways, shots, val_shots, queries, d.rotations, e.label_order, seed,
                          name=f"{d.dataset} split {split!r}")


def build_learner(config: FewShotConfig, transform: ImageTransform, device: torch.device,
                  task_threads: int = 1) -> MetaLearner:
    a, o = config.algorithm, config.optim
    hidden = config.model.hidden or (64 if transform.size < 64 else 32)
    options = {"pool": config.model.pool} if config.model.name == "conv4" else {}
    model = build_model(config.model.name, in_channels=transform.channels, image_size=transform.size,
                        ways=config.episodes.ways, hidden=hidden, **options).to(device)
    optimizer_cls = torch.optim.Adam if o.name == "adam" else torch.optim.SGD
    student = build_student(a.inner, a.steps, a.inner_lr, a.keep_last, a.inner_betas)
    learner = MetaLearner(model, configured_algorithm(config), student, config.teacher,
                          optimizer_cls(model.parameters(), lr=o.lr),
                          a.test_leap, a.test_steps, task_threads, config.batch_tasks, o.clip)
    learner.transform = transform
    return learner


def _meta_batch(sampler: EpisodeSampler, iteration: int, tasks: range) -> list[Task]:
    return [Task(*sampler.episode(TRAIN_STREAM, iteration, j)[:4]) for j in tasks]


def _environment() -> dict:
    return {"lazymeta": __version__, "torch": torch.__version__, "python": platform.python_version()}


def _save(run: RunDir, learner: MetaLearner, iteration: int, config: FewShotConfig) -> None:
    # op_threads: a resumed run uses the same thread count, so it continues bit for bit
    run.save_state({"learner": learner.state_dict(), "iteration": iteration, "torch_rng": torch.get_rng_state(),
                    "op_threads": torch.get_num_threads()})
    if not run.writer:
        return
    leap = learner.mean_leap()
    metadata = {"config": config.to_dict(), "transform": learner.transform.to_dict(), "iteration": iteration,
                "gamma": float(leap.gamma), "alpha": leap.alpha.tolist(), "leap_ema": learner.leap_ema.tolist(),
                "leap_count": learner.leap_count, "gamma_counts": learner.gamma_counts.tolist(),
                "environment": _environment()}
    save_weights(run.file(MODEL), learner.meta_parameters(),
                 {k: json.dumps(v) for k, v in metadata.items()})


def train(config: FewShotConfig, run_dir: str | Path, resume: bool = False, progress: bool = True) -> MetaLearner:
    """Meta-train into ``run_dir`` (resuming from its checkpoint if ``resume``), then return the learner.

    Every split the run will use is checked before the first iteration. Ctrl-C or SIGTERM ends the current
    meta-step, writes a checkpoint and raises :class:`~lazymeta.infra.interrupt.Interrupted`.
    """
    config = validate(config)
    with joined() as world:
        return _train(config, Path(run_dir), resume, progress, world)


def _train(config: FewShotConfig, run_dir: Path, resume: bool, progress: bool, world: World) -> MetaLearner:
    if config.optim.meta_batch % world.size:
        raise TrainingError(f"optim.meta_batch={config.optim.meta_batch} must be a multiple of the "
                            f"{world.size} processes")
    if configured_algorithm(config).second_order and config.algorithm.steps > MAML_STEPS_WARNING:
        warnings.warn(f"second-order {config.algorithm.name} keeps all k={config.algorithm.steps} student steps in its autograd graph: "
                      "its memory grows linearly with k; lazy-maml and lazy-reptile run long horizons at "
                      "constant memory", GraphMemoryWarning, stacklevel=2)
    run = RunDir(run_dir, step="iteration", writer=world.main)
    state = run.load_state() if resume else None
    if state is not None and config.iterations < state["iteration"]:
        raise TrainingError(f"{run.path} is at iteration {state['iteration']}; iterations={config.iterations} cannot "
                            f"undo that: give --iterations {state['iteration']} or more")
    device = pick_device(config.device)
    op_threads, task_threads = cpu_threads(config.threads or (state or {}).get("op_threads"),
                                           1 if config.batch_tasks else config.task_threads,
                                           config.optim.meta_batch // world.size, device)
    set_op_threads(op_threads)
    if device.type == "cpu":
        keep_freed_memory()
    seed_everything(config.seed)
    sampler = build_sampler(config, config.data.train_split, seed=config.seed, train=True)
    build_sampler(config, config.data.test_split, seed=config.seed, train=False)  # fails now, not after training
    learner = build_learner(config, sampler.data.transform, device, task_threads)
    with run.open(config.to_dict(), existing="resume" if resume else "refuse"), stop_on_signal() as stop:
        start = 0
        if state is not None:
            learner.load_state_dict(state["learner"])
            torch.set_rng_state(state["torch_rng"])
            start = int(state["iteration"])
            run.truncate(start)
        _loop(config, run, learner, sampler, start, progress and world.main, world, stop)
    return learner


def _loop(config: FewShotConfig, run: RunDir, learner: MetaLearner, sampler: EpisodeSampler, start: int,
          shown: bool, world: World, stop: StopRequest) -> None:
    o = config.optim
    tasks = my_share(world, o.meta_batch)
    for t in progress(range(start, config.iterations), config.iterations, "meta-train", start, shown):
        lr = o.lr + (o.lr_final - o.lr) * t / max(config.iterations, 1)
        for group in learner.optimizer.param_groups:
            group["lr"] = lr
        began = time.perf_counter()
        try:
            stats = learner.meta_step(_meta_batch(sampler, t, tasks))
        except NonFiniteLossError as err:
            raise TrainingError(f"iteration {t + 1}: {err}") from err
        if (t + 1) % config.log_every == 0 or t + 1 == config.iterations:
            run.log({"iteration": t + 1, **stats, "lr": lr, "seconds": time.perf_counter() - began})
        if (t + 1) % config.checkpoint_every == 0 or t + 1 == config.iterations or stop.requested:
            _save(run, learner, t + 1, config)
        if stop.requested and t + 1 < config.iterations:
            raise Interrupted(f"stopped after iteration {t + 1} of {config.iterations}; its checkpoint is in "
                              f"{run.path}: continue with `lazymeta train --resume {run.path}`")
    if config.iterations == 0 or start == config.iterations:
        _save(run, learner, config.iterations, config)


def load_run(run_dir: str | Path, device: str | None = "cpu") -> tuple[MetaLearner, FewShotConfig]:
    """The meta-trained learner of a run directory (on ``device``, or the run's own device setting when
    None) and the resolved config it was trained with."""
    path = Path(run_dir) / MODEL
    weights, metadata = load_weights(path, "meta-trained model")
    meta = {k: json.loads(v) for k, v in metadata.items()}
    config = update(FewShotConfig(), meta["config"], str(path))
    learner = build_learner(config, ImageTransform(**meta["transform"]), pick_device(device or config.device))
    learner.load_meta_parameters(weights)
    learner.leap_ema = torch.tensor(meta["leap_ema"], dtype=torch.float64)
    learner.leap_count = int(meta["leap_count"])
    learner.gamma_counts = torch.tensor(meta["gamma_counts"], dtype=torch.float64)
    return learner, config


def load(run_dir: str | Path, device: str = "cpu") -> MetaLearner:
    """A meta-trained learner from a run directory: ``load(d).adapt(x, y).predict(q)``."""
    return load_run(run_dir, device)[0]


def untrained_learner(config: FewShotConfig, learner: MetaLearner) -> MetaLearner:
    """The learner as meta-training found it: the same seed draws the same initial θ."""
    seed_everything(config.seed)
    start = build_learner(config, learner.transform, learner.device)
    start.test_leap = learner.test_leap
    return start


def eval_file(split: str, episodes: int, test_leap: str | None) -> str:
    """Where ``lazymeta eval`` writes: beside the training-time ``results.json``, named by its settings."""
    return f"eval-{split}-{episodes}ep" + (f"-{test_leap}" if test_leap else "") + ".json"


def evaluate_run(run_dir: str | Path, episodes: int | None = None, split: str | None = None,
                 test_leap: str | None = None, progress: bool = True, device: str | None = None,
                 untrained: bool = False, write_to: str | None = RESULTS) -> dict:
    """Mean accuracy ± 95% CI of a trained run on fixed test episodes, written to ``write_to`` in the run
    directory (None: a file named by the settings, :func:`eval_file`). ``untrained``: also the untrained start's on the same episodes (what meta-training bought).
    Runs on ``device``, by default the run's own setting (``auto``: the GPU when there is one)."""
    learner, config = load_run(run_dir, device)
    if test_leap is not None:
        learner.test_leap = test_leap
    split = split or config.data.test_split
    sampler = build_sampler(config, split, seed=config.seed, train=False)
    episodes = config.eval_episodes if episodes is None else episodes
    op_threads, threads = cpu_threads(config.threads, config.task_threads, max(episodes, 1), learner.device)
    set_op_threads(op_threads)
    if learner.device.type == "cpu":
        keep_freed_memory()
    report = evaluate(learner, sampler, episodes, progress=progress, threads=threads)
    report.update(dataset=config.data.dataset, split=split, algorithm=config.algorithm.name,
                  iterations=config.iterations)
    fractions = learner.gamma_fractions() if learner.algorithm.lazy else {}
    if fractions:  # where in its γ grid the teacher sat during meta-training
        ordered = [fractions[g] for g in sorted(fractions, key=float)]
        report["leap_edges"] = {"reading": config.teacher.reading, "fractions": fractions, "low": ordered[0],
                                "high": ordered[-1]}
    if untrained:
        start = evaluate(untrained_learner(config, learner), sampler, episodes, progress=progress, threads=threads)
        report["untrained"] = {mode: start[mode] for mode in ("transductive", "support")}
    RunDir(run_dir).write_json(write_to or eval_file(split, episodes, test_leap), report)
    return report
