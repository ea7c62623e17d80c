"""Few-shot evaluation as the literature reports it: mean accuracy ± 95% CI over fixed test episodes."""
from __future__ import annotations

import copy
import math
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from lazymeta.batchnorm import BN_MODES
from lazymeta.fewshot.episodes import EpisodeSampler
from lazymeta.infra.errors import ConfigError
from lazymeta.infra.progress import progress as show
from lazymeta.learner import MetaLearner
from lazymeta.params import functional

EVAL_STREAM = 1  # episode keys (EVAL_STREAM, i): the same test tasks for every method and run


def mean_ci95(values: np.ndarray) -> tuple[float, float]:
    """Mean and the half-width 1.96 s / sqrt(N) of its 95% confidence interval (s with ddof=1)."""
    if len(values) < 2:
        return float(np.mean(values)), float("nan")
    return float(np.mean(values)), 1.96 * float(np.std(values, ddof=1)) / math.sqrt(len(values))


def evaluate(learner: MetaLearner, sampler: EpisodeSampler, episodes: int = 600, progress: bool = True,
             threads: int = 1) -> dict:
    """Adapt to each test episode's support set and classify its query set.

    Returns accuracy and ci95 in percent for each batch-norm mode (``transductive``: the query batch
    normalises itself; ``support``: support-set statistics), the transductive ones at top level.
    ``threads`` > 1 (a CPU) runs episodes in that many threads of one op thread each, each on its own copy
    of the model; every episode is computed as it would be alone, so the result does not depend on it.
    """
    if episodes < 2:
        raise ConfigError(f"episodes must be >= 2 (a 95% confidence interval needs two), got {episodes}")
    local = threading.local()

    def score(i: int) -> dict[str, float]:
        episode = sampler.episode(EVAL_STREAM, i)
        model = getattr(local, "learner", learner).adapt(episode.support_x, episode.support_y)
        query_y = episode.query_y.to(learner.device)
        return {mode: float((model.predict(episode.query_x, bn=mode) == query_y).float().mean()) for mode in BN_MODES}

    def start() -> None:
        torch.set_num_threads(1)
        local.learner = _thread_copy(learner)

    workers = min(threads, episodes) if learner.device.type == "cpu" else 1
    if workers > 1:
        with ThreadPoolExecutor(workers, initializer=start) as pool:
            scores = list(show(pool.map(score, range(episodes)), episodes, "eval", enabled=progress, unit="episodes"))
    else:
        scores = [score(i) for i in show(range(episodes), episodes, "eval", enabled=progress, unit="episodes")]
    accuracies = {mode: np.array([s[mode] for s in scores]) for mode in BN_MODES}
    report = {"episodes": episodes, "ways": sampler.ways, "shots": sampler.shots, "queries": sampler.queries,
              "steps": learner.test_steps, "inner_lr": learner.student.lr, "seed": sampler.seed}
    for mode in BN_MODES:
        mean, ci = mean_ci95(100 * accuracies[mode])
        report[mode] = {"accuracy": mean, "ci95": ci}
    report.update(accuracy=report["transductive"]["accuracy"], ci95=report["transductive"]["ci95"],
                  bn="transductive")
    if learner.algorithm.lazy:
        report["test_leap"] = learner.test_leap
    return report


def _thread_copy(learner: MetaLearner) -> MetaLearner:
    """The learner with a module of its own: functional_call swaps parameters into the module it runs."""
    clone = copy.copy(learner)
    clone.model = copy.deepcopy(learner.model)
    clone.forward = functional(clone.model)
    return clone
