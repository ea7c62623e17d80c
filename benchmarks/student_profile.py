"""Where one graph-free student step goes: torch.profiler's operator table for ``--steps`` SGD steps of
the meta-step benchmark's workload (Conv4 with 64 filters, 5 images of 28x28, lazymeta's channels-last
layout) through the learner's training loss, after one warm-up run: Conv4's hand-written gradient, or
autograd with ``--autograd``; ``--keep-freed-memory`` as the few-shot application runs.

    OMP_NUM_THREADS=1 python benchmarks/student_profile.py --steps 100 --autograd
    OMP_NUM_THREADS=1 python benchmarks/student_profile.py --steps 100 --keep-freed-memory
"""
from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from lazymeta import Student
from lazymeta.infra.runtime import keep_freed_memory
from lazymeta.learner import classification_losses
from lazymeta.models import Conv4
from lazymeta.params import detach, functional, params_of


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rows", type=int, default=25)
    p.add_argument("--autograd", action="store_true", help="profile autograd's gradient instead")
    p.add_argument("--keep-freed-memory", action="store_true")
    a = p.parse_args()
    if a.keep_freed_memory:
        keep_freed_memory()
    torch.manual_seed(0)
    model = Conv4(1, 28, 5, 64, manual_gradient=not a.autograd)
    forward, theta = functional(model), detach(params_of(model))
    x, y = torch.randn(5, 1, 28, 28), torch.arange(5)
    student, train = Student(a.steps, 0.4), classification_losses(forward, 5, x, y, x, y)[0]
    student.run(theta, train)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        student.run(theta, train)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=a.rows))
    print(f"{torch.get_num_threads()} thread(s), {a.steps} steps")


if __name__ == "__main__":
    main()
