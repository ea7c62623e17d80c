"""Episode sampling rate (episodes/second) of every dataset present under a data root.

    python benchmarks/sampling.py [--data-root DIR] [--episodes 200] [--repeats 5] [--threads 1]

Loads each registered dataset's training split from its decoded cache (datasets that are not there are
listed as skipped), then times ``EpisodeSampler.episode`` for 5-way 1-shot and 5-way 5-shot episodes
(1 D_val and 15 query images per class, fewer where classes are smaller: Omniglot-like sets have 20 images
per class, so 13 queries at 5 shots): the median over repeats.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from lazymeta.data import DATASETS, data_root, load_split
from lazymeta.data.download import DatasetError
from lazymeta.fewshot.episodes import EpisodeSampler

SETTINGS = ((5, 1), (5, 5))  # (ways, shots)


def rate(sampler: EpisodeSampler, episodes: int, repeats: int) -> float:
    """Median episodes per second over ``repeats`` runs of ``episodes`` episodes."""
    rates = []
    for repeat in range(repeats):
        start = time.perf_counter()
        for i in range(episodes):
            sampler.episode(repeat, i)
        rates.append(episodes / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", help="dataset directory (else $LAZYMETA_DATA, else ~/.cache/lazymeta)")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a data-loading worker uses one)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = data_root(args.data_root)
    header = f"{'dataset':<15} {'split':<6} {'images':>8} {'classes':>7} {'image':>10}" + "".join(
        f" {f'{w}w{k}s ep/s':>12}" for w, k in SETTINGS)
    print(f"data root: {root}\n{header}")
    skipped = []
    for name in DATASETS:
        try:
            data = load_split(name, "train", root=root)
        except DatasetError as error:
            skipped.append(f"{name} ({str(error).splitlines()[0][:70]}...)")
            continue
        shape = "x".join(map(str, data.images.shape[1:]))
        smallest = min(len(rows) for rows in data.indices_by_class())
        rates = [rate(EpisodeSampler(data, ways, shots, val_shots=1, queries=min(15, smallest - shots - 1), seed=0),
                      args.episodes, args.repeats) for ways, shots in SETTINGS]
        print(f"{name:<15} {'train':<6} {len(data.images):>8} {data.num_classes:>7} {shape:>10}" + "".join(
            f" {r:>12.0f}" for r in rates))
    if skipped:
        print("skipped (not on this machine):\n  " + "\n  ".join(skipped))


if __name__ == "__main__":
    main()
