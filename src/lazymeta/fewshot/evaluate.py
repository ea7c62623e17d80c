"""Few-shot evaluation as the literature reports it: mean accuracy ± 95% CI over fixed test episodes."""
from __future__ import annotations

import math

import numpy as np

from lazymeta.batchnorm import BN_MODES
from lazymeta.fewshot.episodes import EpisodeSampler
from lazymeta.infra.errors import ConfigError
from lazymeta.infra.progress import progress as show
from lazymeta.learner import MetaLearner

EVAL_STREAM = 1  # episode keys (EVAL_STREAM, i): the same test tasks for every method and run


def mean_ci95(values: np.ndarray) -> tuple[float, float]:
    """Mean and the half-width 1.96 s / sqrt(N) of its 95% confidence interval (s with ddof=1)."""
    if len(values) < 2:
        return float(np.mean(values)), float("nan")
    return float(np.mean(values)), 1.96 * float(np.std(values, ddof=1)) / math.sqrt(len(values))


def evaluate(learner: MetaLearner, sampler: EpisodeSampler, episodes: int = 600, progress: bool = True) -> dict:
    """Adapt to each test episode's support set and classify its query set.

    Returns accuracy and ci95 in percent for each batch-norm mode (``transductive``: the query batch
    normalises itself; ``support``: support-set statistics), the transductive ones at top level.
    """
    if episodes < 2:
        raise ConfigError(f"episodes must be >= 2 (a 95% confidence interval needs two), got {episodes}")
    accuracies = {mode: np.zeros(episodes) for mode in BN_MODES}
    for i in show(range(episodes), episodes, "eval", enabled=progress, unit="episodes"):
        episode = sampler.episode(EVAL_STREAM, i)
        model = learner.adapt(episode.support_x, episode.support_y)
        query_y = episode.query_y.to(learner.device)
        for mode in BN_MODES:
            accuracies[mode][i] = float((model.predict(episode.query_x, bn=mode) == query_y).float().mean())
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
