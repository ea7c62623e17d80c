"""The ``memory`` entry (the question of the paper's Table A.4): peak memory and time of one meta-step
against the horizon k, for every algorithm, on the benchmark's Omniglot-shaped workload."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

from lazymeta.algorithms import ALGORITHMS
from lazymeta.reproduce.fewshot import ALGORITHM_ROWS
from lazymeta.reproduce.spec import Claim, Plan, Run

WAYS, SHOTS, QUERIES, META_BATCH, INNER_LR = 5, 1, 15, 4, 0.4
SECOND_ORDER_MAX_K = 20  # beyond this the second-order algorithms take minutes per step on a CPU


def allocator_peak_mb(step: Callable[[list], object], batch: list, device: torch.device) -> float:
    """Peak of allocations minus frees during one step: the CUDA allocator's peak above what was live
    before it, or on a CPU from the profiler's memory events."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step(batch)
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2 ** 20
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step(batch)
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                    key=lambda e: e.start_ns())
    current = peak = 0
    for e in events:
        current += e.nbytes()
        peak = max(peak, current)
    return peak / 2 ** 20


def random_tasks(device: torch.device, hidden_side: int = 28, seed: int = 0) -> list:
    """A meta-batch of random 5-way 1-shot tasks with 15 queries per class (timing ignores pixel values)."""
    from lazymeta.learner import Task

    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(META_BATCH):
        xs = torch.randn(WAYS * SHOTS, 1, hidden_side, hidden_side, generator=g)
        xq = torch.randn(WAYS * QUERIES, 1, hidden_side, hidden_side, generator=g)
        ys, yq = torch.arange(WAYS).repeat_interleave(SHOTS), torch.arange(WAYS).repeat_interleave(QUERIES)
        out.append(Task(xs.to(device), ys.to(device), xq.to(device), yq.to(device)))
    return out


def measure(config: dict) -> dict:
    """Median milliseconds of ``repeats`` meta-steps (after one warm-up) and the allocator's peak MB of one."""
    from lazymeta.learner import MetaLearner
    from lazymeta.models import Conv4
    from lazymeta.student import Student

    torch.manual_seed(config["seed"])
    device = torch.device("cpu")
    model = Conv4(1, 28, WAYS, config["hidden"])
    learner = MetaLearner(model, config["algorithm"], Student(config["steps"], INNER_LR),
                          meta_optimizer=torch.optim.Adam(model.parameters(), 1e-3))
    batch = random_tasks(device, seed=config["seed"])
    learner.meta_step(batch)
    times = []
    for _ in range(config["repeats"]):
        began = time.perf_counter()
        learner.meta_step(batch)
        times.append(time.perf_counter() - began)
    return {"ms": 1000 * statistics.median(times), "peak_mb": allocator_peak_mb(learner.meta_step, batch, device),
            "algorithm": config["algorithm"], "steps": config["steps"]}


def memory(scale: str, seeds: int, data_root: str | None) -> Plan:
    ks = {"smoke": (1, 2), "cpu": (1, 5, 10, 20, 50, 100), "paper": (1, 5, 10, 20, 50, 100)}[scale]
    hidden = 4 if scale == "smoke" else 64
    repeats = 1 if scale == "smoke" else 3
    second_order = [row for row, algorithm in ALGORITHM_ROWS.items() if ALGORITHMS[algorithm].tie.second_order]
    runs = []
    for row, algorithm in ALGORITHM_ROWS.items():
        for k in ks:
            if row in second_order and k > SECOND_ORDER_MAX_K and scale == "cpu":
                continue
            for seed in range(seeds):
                config = {"algorithm": algorithm, "steps": k, "hidden": hidden, "repeats": repeats, "seed": seed}
                runs.append(Run(f"{algorithm}/k{k}/s{seed}", config, row, f"k={k}", seed, app="measure"))
    top = max(k for k in ks if k <= SECOND_ORDER_MAX_K)
    claims = [Claim(f"lazy MAML − MAML peak memory (MB), both at k = {top}", "lazy MAML", "MAML", f"k={top}"),
              Claim(f"lazy MAML at k = {max(ks)} − MAML at k = {top}, peak memory (MB)", "lazy MAML", "MAML",
                    f"k={max(ks)}", worse_column=f"k={top}")]
    notes = [f"Conv4 with {hidden} filters on 1x28x28 inputs, 5-way 1-shot, 15 queries per class as D_val, "
             f"meta-batch 4, inner lr {INNER_LR}; {repeats} timed meta-steps after a warm-up per seed, on the CPU",
             "peak memory: the allocator's peak during one meta-step above what was live before it "
             "(torch.profiler memory events)",
             f"the second-order algorithms ({', '.join(second_order)}) only up to k = {SECOND_ORDER_MAX_K} "
             "at cpu scale (minutes per step beyond)"]
    return Plan(runs, list(ALGORITHM_ROWS), [f"k={k}" for k in ks], claims, notes, metric="peak_mb",
                lower_is_better=True, x_axis="k (student steps)")
