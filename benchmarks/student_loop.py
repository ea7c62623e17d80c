"""The student loop's time per step on a CPU: autograd against Conv4's hand-written gradient, with glibc's
default handling of freed memory and with ``keep_freed_memory``.

The workload is the meta-step benchmark's: Conv4 with 64 filters, 5-way 1-shot tasks of 28x28 images, plain
SGD (lr 0.4) for ``--k`` steps through the learner's own training loss, one op thread. Each setup runs in a
fresh process (the memory setting is process-wide), ``--tasks`` tasks after one warm-up task, interleaved
over ``--repeats`` rounds; the table gives medians over the rounds.

    OMP_NUM_THREADS=1 python benchmarks/student_loop.py --k 100 --tasks 5 --repeats 5

Check `uptime` first: other processes on the cores inflate every row.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# setup -> (Conv4's manual_gradient, keep_freed_memory)
SETUPS = {
    "autograd, glibc default (before)": (False, False),
    "autograd, freed memory kept": (False, True),
    "hand-written gradient, glibc default": (True, False),
    "hand-written gradient, freed memory kept (after)": (True, True),
}
CHILD = """
import json, sys, time
import torch
from lazymeta import Student
from lazymeta.infra.runtime import keep_freed_memory
from lazymeta.learner import classification_losses
from lazymeta.models import Conv4
from lazymeta.params import detach, functional, params_of
manual, keep, k, tasks = sys.argv[1] == "1", sys.argv[2] == "1", int(sys.argv[3]), int(sys.argv[4])
if keep:
    keep_freed_memory()
torch.manual_seed(0)
model = Conv4(1, 28, 5, 64, manual_gradient=manual)
forward, theta, student = functional(model), detach(params_of(model)), Student(k, 0.4)
y = torch.arange(5)
def task():
    x = torch.rand(5, 1, 28, 28)
    student.run(theta, classification_losses(forward, 5, x, y, x, y)[0])
task()
began = time.perf_counter()
for _ in range(tasks):
    task()
print(json.dumps({"ms_per_step": (time.perf_counter() - began) / (tasks * k) * 1e3}))
"""


def run(setup: str, k: int, tasks: int) -> float:
    manual, keep = SETUPS[setup]
    env = {key: v for key, v in os.environ.items() if not key.startswith("MALLOC_")}
    env.setdefault("OMP_NUM_THREADS", "1")
    out = subprocess.run([sys.executable, "-c", CHILD, str(int(manual)), str(int(keep)), str(k), str(tasks)],
                         env=env, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["ms_per_step"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--tasks", type=int, default=5)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    print(f"load before: {os.getloadavg()[0]:.2f}, op threads: {os.environ.get('OMP_NUM_THREADS', '1')}", flush=True)
    times: dict[str, list[float]] = {s: [] for s in SETUPS}
    for _ in range(args.repeats):
        for setup in SETUPS:
            times[setup].append(run(setup, args.k, args.tasks))
    before = statistics.median(times["autograd, glibc default (before)"])
    print(f"\nk = {args.k}, {args.tasks} tasks per process, medians over {args.repeats} rounds\n")
    print("| setup | ms per student step | min - max | vs before |")
    print("|---|---:|---:|---:|")
    for setup, ts in times.items():
        m = statistics.median(ts)
        print(f"| {setup} | {m:.2f} | {min(ts):.2f} - {max(ts):.2f} | {m / before - 1:+.0%} |")
    after = statistics.median(times["hand-written gradient, freed memory kept (after)"])
    verdict = "met" if after <= 0.7 * before else "not met"
    print(f"\nk={args.k}: student step {after:.2f} ms vs {before:.2f} ms before: {after / before - 1:+.0%} "
          f"(goal -30 %): {verdict}")


if __name__ == "__main__":
    main()
