"""Where one graph-free student step goes: torch.profiler's operator table for ``--steps`` SGD steps of
the meta-step benchmark's workload (Conv4 with 64 filters, 5 images of 28x28, lazymeta's channels-last
layout), after one warm-up run.

    OMP_NUM_THREADS=1 python benchmarks/student_profile.py --steps 20
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from lazymeta import Student
from lazymeta.models import Conv4
from lazymeta.params import detach, functional, params_of


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rows", type=int, default=25)
    a = p.parse_args()
    torch.manual_seed(0)
    model = Conv4(1, 28, 5, 64)
    forward, theta = functional(model), detach(params_of(model))
    x, y = torch.randn(5, 1, 28, 28), torch.arange(5)
    student = Student(a.steps, 0.4)
    student.run(theta, lambda q: F.cross_entropy(forward(q, x), y))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        student.run(theta, lambda q: F.cross_entropy(forward(q, x), y))
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=a.rows))
    print(f"{torch.get_num_threads()} thread(s), {a.steps} steps")


if __name__ == "__main__":
    main()
