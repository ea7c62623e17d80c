"""Where a meta-learner's task goes on a CPU: the student's k steps, the teacher's choice of the leap (lazy
algorithms) and the outer pass, with Conv4's hand-written derivatives (gradient, graph-free scoring,
Hessian-vector products) against autograd (``manual_gradient=False``), for the shapes the cpu-scale
reproductions run. A second-order student (MAML, Meta-SGD, TAML, Meta-Curvature) builds its graph; its outer
pass walks it back.

The default workload is Table 3's and the leap-reading entry's Omniglot 5-way 1-shot at cpu scale: Conv4
with 16 filters on 28x28 images, k = 10, D_val 1 image per class; the horizon entry's is ``--ways 20 --shots
5 --k 20``. Tasks are random images; the two setups alternate over ``--repeats`` rounds of ``--tasks`` tasks
in one process (one op thread, freed memory kept, as the applications run), after one warm-up round; the
table gives medians over every timed task, and a meta-step of 2 tasks in turn.

    OMP_NUM_THREADS=1 python benchmarks/task_parts.py --algorithm lazy-maml
    OMP_NUM_THREADS=1 python benchmarks/task_parts.py --algorithm lazy-maml --ways 20 --shots 5 --k 20
    OMP_NUM_THREADS=1 python benchmarks/task_parts.py --algorithm maml

Check `uptime` first: other processes on the cores inflate every row.
"""
from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

from lazymeta import MetaLearner, Student, Task
from lazymeta.infra.runtime import keep_freed_memory
from lazymeta.models import Conv4
from lazymeta.params import params_of

SETUPS = {"autograd": False, "hand-written gradient and scoring": True}  # setup -> Conv4's manual_gradient
PARTS = ("student", "teacher", "outer pass", "task")


def timed_task(learner: MetaLearner, task: Task) -> dict[str, float]:
    """One task's parts in ms; the teacher's is the tie's time less a student run's (lazy algorithms only).
    A second-order student builds its graph, which the outer pass then walks back."""
    theta, algorithm, meta = params_of(learner.model), learner.algorithm, learner.meta
    losses = learner.objective.losses(learner.forward, task)
    t0 = time.perf_counter()
    learner.student.run(theta, losses.train, create_graph=algorithm.second_order, meta=meta)
    t1 = time.perf_counter()
    adapted = algorithm.adapt(theta, learner.student, learner.teacher, losses.train, losses.metric, meta)
    t2 = time.perf_counter()
    algorithm.meta_gradient(theta, adapted, losses.metric, meta, losses.entropy)
    t3 = time.perf_counter()
    teacher = max(0.0, (t2 - t1) - (t1 - t0)) * 1e3 if algorithm.lazy else float("nan")
    return {"student": (t1 - t0) * 1e3, "teacher": teacher, "outer pass": (t3 - t2) * 1e3, "task": (t3 - t1) * 1e3}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algorithm", default="lazy-maml", help="lazy-maml, fomaml, maml, meta-sgd, imaml, ...")
    p.add_argument("--ways", type=int, default=5)
    p.add_argument("--shots", type=int, default=1)
    p.add_argument("--val-shots", type=int, default=1, help="D_val images per class")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--hidden", type=int, default=16)
    p.add_argument("--tasks", type=int, default=4)
    p.add_argument("--repeats", type=int, default=7)
    a = p.parse_args()
    keep_freed_memory()
    torch.manual_seed(0)
    start = Conv4(1, 28, a.ways, a.hidden).state_dict()
    learners = {}
    for name, manual in SETUPS.items():
        model = Conv4(1, 28, a.ways, a.hidden, manual_gradient=manual)
        model.load_state_dict(start)
        learners[name] = MetaLearner(model, a.algorithm, Student(a.k, 0.1))
    labels = torch.arange(a.ways)
    tasks = [Task(torch.rand(a.ways * a.shots, 1, 28, 28), labels.repeat_interleave(a.shots),
                  torch.rand(a.ways * a.val_shots, 1, 28, 28), labels.repeat_interleave(a.val_shots))
             for _ in range(a.tasks)]
    times = {name: {part: [] for part in (*PARTS, "meta-step")} for name in SETUPS}
    for round_ in range(a.repeats + 1):
        for name, learner in learners.items():
            parts = [timed_task(learner, task) for task in tasks]
            began = time.perf_counter()
            for lo in range(0, len(tasks) - 1, 2):  # every task's contribution, without the optimizer's update
                list(learner._run_tasks(params_of(learner.model), tasks[lo:lo + 2]))
            step = (time.perf_counter() - began) / max(1, len(tasks) // 2) * 1e3
            if round_:  # the first round warms up
                for part in PARTS:
                    times[name][part] += [t[part] for t in parts]
                times[name]["meta-step"].append(step)
    print(f"{a.algorithm}, {a.ways}-way {a.shots}-shot, D_val {a.val_shots} per class, k = {a.k}, Conv4-{a.hidden}, "
          f"{torch.get_num_threads()} op thread(s); medians in ms")
    print("| setup | " + " | ".join((*PARTS, "2 tasks")) + " |")
    print("|---|" + "---:|" * (len(PARTS) + 1))
    for name, parts in times.items():
        print(f"| {name} | " + " | ".join("" if math.isnan(v[0]) else f"{statistics.median(v):.2f}"
                                          for v in parts.values()) + " |")


if __name__ == "__main__":
    main()
