"""How a few-shot dataset runs at each scale: smoke (seconds, the embedded glyphs in place of every dataset),
cpu (about an hour per entry on 2 cores: smaller images and networks, fewer meta-iterations) and paper
(the paper's setting, for a GPU)."""
from __future__ import annotations

from dataclasses import dataclass, replace

from lazymeta.infra.errors import ConfigError
from lazymeta.reproduce.spec import SCALES


@dataclass(frozen=True)
class Setting:
    """One dataset at one scale: what the runs of an entry share."""

    dataset: str
    image_size: int | None
    hidden: int | None
    iterations: int
    meta_batch: int
    eval_episodes: int
    queries: int
    inner_lr: float
    note: str = ""

    def config(self, data_root: str | None) -> dict:
        return {"data": {"dataset": self.dataset, "root": data_root, "image_size": self.image_size},
                "model": {"hidden": self.hidden}, "iterations": self.iterations, "eval_episodes": self.eval_episodes,
                "eval_untrained": False,
                "episodes": {"queries": self.queries}, "optim": {"meta_batch": self.meta_batch},
                "algorithm": {"inner_lr": self.inner_lr}, "checkpoint_every": max(1, self.iterations // 10)}


SMOKE = Setting("glyphs", None, 4, iterations=2, meta_batch=2, eval_episodes=4, queries=2, inner_lr=0.1,
                note="smoke: the embedded glyphs stand in for every dataset; Conv4 with 4 filters, 2 meta-iterations")
# Paper-scale settings follow MAML's protocols (cbfinn/maml): Omniglot Conv4-64 at 28 px, miniImageNet and
# tieredImageNet Conv4-32 at 84 px, CIFAR-FS Conv4-64 at 32 px; 60k meta-iterations.
PAPER = {
    "omniglot": Setting("omniglot", 28, 64, 60000, 32, 1000, 15, 0.1),
    "miniimagenet": Setting("miniimagenet", 84, 32, 60000, 4, 2000, 15, 0.01),
    "tieredimagenet": Setting("tieredimagenet", 84, 32, 60000, 4, 2000, 15, 0.01),
    "cifar-fs": Setting("cifar-fs", 32, 64, 60000, 4, 1000, 15, 0.01),
}
# cpu: Conv4 with 16 filters, meta-batch 2; miniImageNet from its 60-images-per-class subset at 24 px. Each
# entry sets its meta-iterations and test episodes (what fits about an hour on 2 cores).
CPU = {
    "omniglot": Setting("omniglot", 28, 16, 0, 2, 0, 15, 0.1),
    "miniimagenet": Setting("miniimagenet", 24, 16, 0, 2, 0, 5, 0.05),
    "tieredimagenet": Setting("tieredimagenet", 24, 16, 0, 2, 0, 5, 0.05),
    "cifar-fs": Setting("cifar-fs", 32, 16, 0, 2, 0, 15, 0.05),
}
PAPER_NOTE = {"omniglot": "Conv4-64 at 28 px, meta-batch 32 (MAML's 5-way protocol)",
              "miniimagenet": "600 images per class at 84 px, Conv4-32, meta-batch 4, 15 queries per class, inner lr "
                              "0.01", "tieredimagenet": "84 px, Conv4-32, meta-batch 4, 15 queries per class",
              "cifar-fs": "Conv4-64 at 32 px, meta-batch 4, 15 queries per class"}


def setting(scale: str, dataset: str, cpu: tuple[int, int], eval_episodes: int | None = None,
            queries: int | None = None) -> Setting:
    """The setting of ``dataset`` at ``scale``: at cpu scale with the entry's (meta-iterations, test
    episodes) ``cpu``; ``eval_episodes`` overrides the paper scale's count (the paper evaluates Tables 1-2 on
    2000 episodes, Table 3 on 1000), ``queries`` the query images per class (at most what the data
    allows). The note says what differs from the paper."""
    if scale not in SCALES:
        raise ConfigError(f"scale must be one of {SCALES}, got {scale!r}")
    if scale == "smoke":
        return SMOKE
    table = CPU if scale == "cpu" else PAPER
    if dataset not in table:
        raise ConfigError(f"no {scale}-scale setting for dataset {dataset!r}; known: {sorted(table)}")
    chosen = table[dataset]
    if queries is not None:
        chosen = replace(chosen, queries=min(queries, chosen.queries))
    if scale == "paper":
        return replace(chosen, eval_episodes=eval_episodes) if eval_episodes else chosen
    iterations, episodes = cpu
    size = f"{chosen.image_size} px" if chosen.image_size else "its own size"
    subset = " from its 60-images-per-class subset" if dataset == "miniimagenet" else ""
    note = (f"{dataset}{subset} at {size}, Conv4 with {chosen.hidden} filters, meta-batch {chosen.meta_batch}, "
            f"{iterations} meta-iterations (paper: 60k), {episodes} test episodes with {chosen.queries} queries per "
            f"class, inner lr {chosen.inner_lr} (paper: {PAPER_NOTE[dataset]}; 60k meta-iterations)")
    return replace(chosen, iterations=iterations, eval_episodes=episodes, note=note)
