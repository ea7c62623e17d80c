"""Time and memory of one meta-iteration against the horizon k, for every lazymeta algorithm and, when
installed, learn2learn's and higher's MAML on the same workload.

Workload (the one of shared/anchors/performance.md): Omniglot-shaped Conv4 (64 filters, 1x28x28),
5-way 1-shot, 15 query images per class as D_val, meta-batch 4, inner SGD lr 0.4, Adam 1e-3, random
images with balanced labels (timing does not depend on pixel values). The libraries run the Conv4 their
users write (conv-BN-ReLU-pool in NCHW, ``--baseline-model reference``, the default) or lazymeta's
channels-last Conv4 (``--baseline-model lazymeta``), to separate the model's share of a speed-up.
Rows marked "bf16 scoring" let the lazy teacher score its candidates under bfloat16 autocast.

    python benchmarks/meta_step.py                       # k in 1 5 10 20 50 100, table + plot
    python benchmarks/meta_step.py --ks 1 10 20 --repeats 7 --plot docs/bench_k.png
    python benchmarks/meta_step.py --queries 1          # D_val of 1 image per class, as the paper's lazy runs
    torchrun --nproc-per-node 2 benchmarks/meta_step.py --threads 1   # tasks split over 2 processes

Reported per (implementation, k): median milliseconds per meta-iteration over ``--repeats`` timed
iterations (after 2 warm-up ones), iterations per second, the peak of torch's allocator during one
extra iteration above what was live before it (from torch.profiler memory events), and achieved
GFLOP/s (convolutions and matmuls counted by FlopCounterMode). Implementations are interleaved
across repeats so that machine noise hits all of them alike. Check `uptime` first: on a shared
2-core machine another process can slow a 2-thread torch run by 10-100x.
"""
from __future__ import annotations

import argparse
import functools
import math
import re
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from torch import Tensor, nn

from lazymeta import LazyTeacher, MetaLearner, Student, Task
from lazymeta.algorithms import ALGORITHMS
from lazymeta.learner import batched_classification_losses, classification_losses
from lazymeta.models import Conv4
from lazymeta.params import detach, functional, params_of
from lazymeta.infra.distributed import World, join, my_share

WAYS, SHOTS, QUERIES, META_BATCH, INNER_LR = 5, 1, 15, 4, 0.4
SECOND_ORDER_MAX_K = 20  # second-order rows beyond this take minutes per iteration on a CPU
SCORING = "lazy teacher's scoring only"
# The CPU goals of the performance issue: a lazy-MAML step costs at most FOMAML's plus 1.1x its scoring
# forwards, and at least 3x fewer milliseconds than learn2learn's MAML with the CLI's D_val of 1 image per class.
SCORING_FACTOR, L2L_MAML_RATIO, GOAL_QUERIES = 1.1, 3.0, 1


def tasks(device: torch.device, queries: int = QUERIES, seed: int = 0) -> list[Task]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(META_BATCH):
        xs, xq = torch.randn(WAYS * SHOTS, 1, 28, 28, generator=g), torch.randn(WAYS * queries, 1, 28, 28, generator=g)
        ys, yq = torch.arange(WAYS).repeat_interleave(SHOTS), torch.arange(WAYS).repeat_interleave(queries)
        out.append(Task(xs.to(device), ys.to(device), xq.to(device), yq.to(device)))
    return out


class ReferenceConv4(Conv4):
    """The Conv4 of the MAML / learn2learn / higher examples: conv-BN-ReLU-pool on NCHW tensors."""

    def __init__(self) -> None:
        super().__init__(1, 28, WAYS, 64)
        for block in self.features:
            block[2], block[3] = block[3], block[2]  # ReLU before max-pool

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x).flatten(1))


def baseline_model(kind: str) -> nn.Module:
    return ReferenceConv4() if kind == "reference" else Conv4(1, 28, WAYS, 64)


def ours(name: str, k: int, device: torch.device, score_precision: str = "float32",
         task_threads: int = 1, batch_tasks: bool = False) -> Callable[[list[Task]], object]:
    model = Conv4(1, 28, WAYS, 64).to(device)
    teacher = LazyTeacher(score_precision=score_precision)
    learner = MetaLearner(model, name, Student(k, INNER_LR), teacher, torch.optim.Adam(model.parameters(), 1e-3),
                          task_threads=task_threads, batch_tasks=batch_tasks)
    return learner.meta_step


def student_loop(k: int, device: torch.device, batched: bool = False) -> Callable[[list[Task]], object]:
    """The k graph-free SGD steps of every task of the meta-batch, nothing else (their GFLOP/s is the
    student loop's utilisation): task by task (through the learner's training loss, so Conv4's hand-written
    gradient on a CPU), or all tasks in one vmapped pass per step."""
    model = Conv4(1, 28, WAYS, 64).to(device)
    forward, student = functional(model), Student(k, INNER_LR)
    theta = detach(params_of(model))

    def step(batch: list[Task]) -> None:
        if batched:
            train_loss, _ = batched_classification_losses(forward, WAYS, *(torch.stack(f) for f in zip(*batch)))
            student.run({n: p.expand(len(batch), *p.shape) for n, p in theta.items()}, train_loss)
            return
        for t in batch:
            student.run(theta, classification_losses(forward, WAYS, *t)[0])

    return step


def teacher_scoring(k: int, device: torch.device) -> Callable[[list[Task]], object]:
    """Only the lazy teacher's choice: its candidate leaps scored on every task's D_val (the forwards a
    lazy-MAML step adds to a FOMAML step), from a fixed student checkpoint; ``k`` does not change it."""
    model = Conv4(1, 28, WAYS, 64).to(device)
    forward, teacher = functional(model), LazyTeacher()
    theta = detach(params_of(model))
    checkpoint = {n: p + 0.01 * torch.randn_like(p) for n, p in theta.items()}

    def step(batch: list[Task]) -> None:
        for t in batch:
            _, metric = classification_losses(forward, WAYS, *t)
            teacher.choose(theta, [checkpoint], metric)

    return step


@functools.cache
def import_learn2learn_maml() -> type:
    """learn2learn's MAML class. Its package ``__init__`` imports torchvision, which PyPI's build cannot
    load beside the CPU torch wheel; then only the pure-PyTorch ``learn2learn.algorithms`` is loaded."""
    try:
        from learn2learn.algorithms import MAML
        return MAML
    except ImportError:
        import importlib.util
        import os
        import sys
        import types

        spec = importlib.util.find_spec("learn2learn")
        if spec is None:
            raise
        for name in [m for m in sys.modules if m.split(".")[0] == "learn2learn"]:
            del sys.modules[name]
        root = spec.submodule_search_locations[0]
        for name, path in (("learn2learn", root), ("learn2learn.algorithms", os.path.join(root, "algorithms"))):
            module = types.ModuleType(name)
            module.__path__ = [path]
            sys.modules[name] = module
        from learn2learn.algorithms.maml import MAML
        return MAML


def learn2learn_maml(first_order: bool, k: int, device: torch.device, model: nn.Module) -> Callable[[list[Task]], object]:
    MAML = import_learn2learn_maml()
    model = model.to(device)
    maml = MAML(model, lr=INNER_LR, first_order=first_order)
    opt = torch.optim.Adam(maml.parameters(), 1e-3)

    def step(batch: list[Task]) -> None:
        opt.zero_grad()
        for t in batch:
            learner = maml.clone()
            for _ in range(k):
                learner.adapt(F.cross_entropy(learner(t.train_x), t.train_y))
            (F.cross_entropy(learner(t.val_x), t.val_y) / len(batch)).backward()
        opt.step()

    return step


def higher_maml(k: int, device: torch.device, model: nn.Module) -> Callable[[list[Task]], object]:
    import higher

    model = model.to(device)
    opt, inner = torch.optim.Adam(model.parameters(), 1e-3), torch.optim.SGD(model.parameters(), lr=INNER_LR)

    def step(batch: list[Task]) -> None:
        opt.zero_grad()
        for t in batch:
            with higher.innerloop_ctx(model, inner, copy_initial_weights=False) as (fmodel, diffopt):
                for _ in range(k):
                    diffopt.step(F.cross_entropy(fmodel(t.train_x), t.train_y))
                (F.cross_entropy(fmodel(t.val_x), t.val_y) / len(batch)).backward()
        opt.step()

    return step


def implementations(k: int, device: torch.device, baseline: str, world: World, task_threads: int = 1,
                    batch_tasks: bool = False, second_order_max_k: int = SECOND_ORDER_MAX_K
                    ) -> dict[str, Callable[[], Callable]]:
    # the second-order algorithms (maml, meta-sgd, taml, meta-curvature) only up to second_order_max_k
    second_order = k <= second_order_max_k
    runs = [name for name, a in ALGORITHMS.items() if second_order or not a.tie.second_order]
    impls = {f"lazymeta {name}": (lambda name=name: ours(name, k, device, task_threads=task_threads)) for name in runs}
    for name in ("lazy-maml", "lazy-reptile"):
        impls[f"lazymeta {name} (bf16 scoring)"] = lambda name=name: ours(name, k, device, "bfloat16", task_threads)
    impls["student loop only (sequential)"] = lambda: student_loop(k, device)
    impls[SCORING] = lambda: teacher_scoring(k, device)
    if batch_tasks:
        for name in runs:
            if ALGORITHMS[name].batchable:
                impls[f"lazymeta {name} (batched tasks)"] = lambda name=name: ours(name, k, device, batch_tasks=True)
        impls["lazymeta lazy-maml (batched tasks, bf16 scoring)"] = lambda: ours("lazy-maml", k, device, "bfloat16",
                                                                                batch_tasks=True)
        impls["student loop only (batched tasks)"] = lambda: student_loop(k, device, batched=True)
    if world.size > 1:  # the libraries have no task-parallel meta-step to compare with
        return impls
    try:
        import_learn2learn_maml()
        if second_order:
            impls["learn2learn MAML"] = lambda: learn2learn_maml(False, k, device, baseline_model(baseline))
        impls["learn2learn FOMAML"] = lambda: learn2learn_maml(True, k, device, baseline_model(baseline))
    except ImportError:
        pass
    try:
        import higher  # noqa: F401
        if second_order:
            impls["higher MAML"] = lambda: higher_maml(k, device, baseline_model(baseline))
    except ImportError:
        pass
    return impls


def sequential_twin(name: str) -> str:
    """The task-by-task implementation that computes what a batched-tasks row computes."""
    if name == "student loop only (batched tasks)":
        return "student loop only (sequential)"
    return name.replace("batched tasks, ", "").replace(" (batched tasks)", "")


def allocator_peak_mb(step: Callable, batch: list[Task], device: torch.device) -> float:
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


def flops(step: Callable, batch: list[Task], world: World) -> int:
    """Convolution and matmul FLOPs of one step, summed over the processes of a torchrun world."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        step(batch)
    total = torch.tensor(float(counter.get_total_flops()), dtype=torch.float64)
    if world.size > 1:
        torch.distributed.all_reduce(total)
    return int(total)


def measure(ks: list[int], repeats: int, device: torch.device, queries: int = QUERIES,
            baseline: str = "reference", world: World = World(0, 1), task_threads: int = 1,
            batch_tasks: bool = False, second_order_max_k: int = SECOND_ORDER_MAX_K, only: str = "") -> list[dict]:
    batch, rows = tasks(device, queries), []
    batch = [batch[i] for i in my_share(world, len(batch))]
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for k in ks:
        made = implementations(k, device, baseline, world, task_threads, batch_tasks, second_order_max_k)
        steps = {name: make() for name, make in made.items() if re.search(only, name)}
        times: dict[str, list[float]] = {name: [] for name in steps}
        for step in steps.values():  # warm-up
            step(batch)
            step(batch)
        for _ in range(repeats):
            for name, step in steps.items():
                sync()
                began = time.perf_counter()
                step(batch)
                sync()
                times[name].append(time.perf_counter() - began)
        # The profiler and the FLOP counter see only the calling thread, and FlopCounterMode over-counts
        # the grouped convolutions of vmapped tasks (about 2x): for task threads and batched tasks, count
        # the FLOPs of the same computation run task by task; task threads leave the memory column empty.
        sequential = implementations(k, device, baseline, world, second_order_max_k=second_order_max_k)
        for name, step in steps.items():
            median = statistics.median(times[name])
            threaded = task_threads > 1 and name.startswith("lazymeta ")
            twin = sequential_twin(name)
            memory = float("nan") if threaded else allocator_peak_mb(step, batch, device)
            counted = sequential[twin]() if threaded or twin != name else step
            rows.append({"impl": name, "k": k, "ms": 1000 * median, "it_s": 1 / median, "peak_mb": memory,
                         "gflops": flops(counted, batch, world) / median / 1e9})
            if world.main:
                print(f"k={k:<4} {name:<40} {1000 * median:9.1f} ms  {memory:8.1f} MB", flush=True)
    return rows


def sgemm_peak(size: int = 2048, repeats: int = 10, device: torch.device = torch.device("cpu")) -> float:
    """GFLOP/s of a float32 ``size``² matrix product (with the current threads, or on the GPU with
    torch's matmul precision setting): the utilisation reference."""
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    a @ b
    times = []
    for _ in range(repeats):
        sync()
        began = time.perf_counter()
        a @ b
        sync()
        times.append(time.perf_counter() - began)
    return 2 * size ** 3 / statistics.median(times) / 1e9


def cpu_name() -> str:
    try:
        lines = open("/proc/cpuinfo").read().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        import platform
        return platform.processor() or "unknown CPU"


def table(rows: list[dict]) -> str:
    lines = ["| implementation | k | median ms / meta-iteration | meta-iterations / s | allocator peak MB | GFLOP/s |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['impl']} | {r['k']} | {r['ms']:.0f} | {r['it_s']:.2f} | "
              f"{'n/a' if math.isnan(r['peak_mb']) else format(r['peak_mb'], '.1f')} | {r['gflops']:.1f} |" for r in rows]
    return "\n".join(lines)


def goals(rows: list[dict], queries: int) -> list[str]:
    """The CPU goal lines, computed from the rows of each k (the ratio goal holds at the CLI's D_val)."""
    lines = []
    for k in dict.fromkeys(r["k"] for r in rows):
        ms = {r["impl"]: r["ms"] for r in rows if r["k"] == k}
        lazy, fomaml, scoring = ms.get("lazymeta lazy-maml"), ms.get("lazymeta fomaml"), ms.get(SCORING)
        if lazy and fomaml and scoring:
            bound = fomaml + SCORING_FACTOR * scoring
            lines.append(f"k={k}: lazy-maml {lazy:.0f} ms <= fomaml {fomaml:.0f} + {SCORING_FACTOR} x scoring "
                         f"{scoring:.0f} = {bound:.0f} ms: {'met' if lazy <= bound else 'NOT met'}")
        l2l = ms.get("learn2learn MAML")
        if lazy and l2l:
            ratio = l2l / lazy
            verdict = ("met" if ratio >= L2L_MAML_RATIO else "NOT met") if queries == GOAL_QUERIES else \
                f"the goal is set at --queries {GOAL_QUERIES}"
            lines.append(f"k={k}: lazy-maml {ratio:.2f}x learn2learn MAML (goal >= {L2L_MAML_RATIO}x, D_val "
                         f"{queries}/class): {verdict}")
    return lines


def plot(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for impl in dict.fromkeys(r["impl"] for r in rows):
        mine = [r for r in rows if r["impl"] == impl]
        style = {"marker": "o", "label": impl, "linestyle": "-" if impl.startswith(("lazymeta", "student")) else "--"}
        left.plot([r["k"] for r in mine], [r["ms"] for r in mine], **style)
        right.plot([r["k"] for r in mine], [r["peak_mb"] for r in mine], **style)
    left.set(xlabel="inner steps k", ylabel="ms per meta-iteration", xscale="log", yscale="log")
    right.set(xlabel="inner steps k", ylabel="torch allocator peak (MB)", xscale="log")
    left.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ks", type=int, nargs="+", default=[1, 5, 10, 20, 50, 100])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--queries", type=int, default=QUERIES,
                   help="D_val images per class, for every implementation (the paper's lazy protocol uses 1)")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    p.add_argument("--task-threads", type=int, default=1, help="lazymeta's MetaLearner(task_threads=...)")
    p.add_argument("--batch-tasks", action="store_true",
                   help="add rows for lazymeta's MetaLearner(batch_tasks=True) (tasks vmapped together)")
    p.add_argument("--second-order-max-k", type=int, default=SECOND_ORDER_MAX_K,
                   help="largest k for the second-order rows (maml, meta-sgd, taml, meta-curvature, the libraries' MAML: their memory and time grow with k)")
    p.add_argument("--baseline-model", choices=("reference", "lazymeta"), default="reference",
                   help="the Conv4 the libraries run: the usual NCHW conv-BN-ReLU-pool one, or lazymeta's")
    p.add_argument("--only", default="", help="measure only the implementations whose name matches this regex")
    p.add_argument("--plot", default="bench_meta_step.png", help="where to write the time/memory-vs-k plot")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    world = join()
    device = torch.device(a.device)
    rows = measure(a.ks, a.repeats, device, a.queries, a.baseline_model, world, a.task_threads, a.batch_tasks,
                   a.second_order_max_k, a.only)
    if world.main:
        if device.type == "cpu":
            print(f"\n{cpu_name()}; float32 sgemm 2048x2048 with {torch.get_num_threads()} thread(s): "
                  f"{sgemm_peak():.0f} GFLOP/s")
        else:
            print(f"\n{torch.cuda.get_device_name(device)}; float32 matmul 8192x8192 "
                  f"(TF32 {'on' if torch.backends.cuda.matmul.allow_tf32 else 'off'}): "
                  f"{sgemm_peak(8192, device=device):.0f} GFLOP/s; convolutions with "
                  f"TF32 {'on' if torch.backends.cudnn.allow_tf32 else 'off'} (torch's defaults)")
        print(f"\ntorch {torch.__version__}, {world.size} process(es) x {torch.get_num_threads()} threads, "
              f"device {a.device}, D_val {a.queries}/class, libraries on the {a.baseline_model} Conv4, "
              f"lazymeta task_threads={a.task_threads}\n")
        print(table(rows))
        print("\nCPU goals:\n" + "\n".join(goals(rows, a.queries)))
        plot(rows, a.plot)
        print(f"\nplot: {a.plot}")


if __name__ == "__main__":
    main()
