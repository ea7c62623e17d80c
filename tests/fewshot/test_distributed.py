"""Two gloo processes on loopback take the same meta-step as one process running all the tasks."""
import os
import socket
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file

from lazymeta.infra.distributed import joined
from lazymeta.learner import MetaLearner, Task, _all_reduce
from lazymeta.student import Student

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
from test_algorithms import Tiny, tiny_task  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def step(algorithm, tasks, batch_tasks=False):
    torch.manual_seed(0)
    model = Tiny().double()
    learner = MetaLearner(model, algorithm, Student(steps=3, lr=0.3, keep_last=2),
                          meta_optimizer=torch.optim.Adam(model.parameters(), lr=0.01), batch_tasks=batch_tasks)
    stats = learner.meta_step(tasks)
    return {n: p.detach() for n, p in model.named_parameters()}, stats, learner.leap_ema


def worker(rank, world, port, algorithm, batch_tasks, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    tasks = [Task(*tiny_task(s)) for s in range(4)]
    result = step(algorithm, tasks[rank::world], batch_tasks)
    if rank == 0:
        torch.save(result, out)
    dist.destroy_process_group()


@pytest.mark.parametrize("algorithm,batch_tasks", [("lazy-maml", False), ("lazy-reptile", False), ("maml", False),
                                                   ("lazy-maml", True)])
def test_distributed_meta_step_equals_single_process(algorithm, batch_tasks, tmp_path):
    """Each rank runs its share of the tasks (batched within the rank, in the last case)."""
    out = tmp_path / "rank0.pt"
    mp.start_processes(worker, args=(2, free_port(), algorithm, batch_tasks, str(out)), nprocs=2, start_method="spawn")
    params, stats, ema = torch.load(out, weights_only=False)
    expected_params, expected_stats, expected_ema = step(algorithm, [Task(*tiny_task(s)) for s in range(4)])
    for name, p in expected_params.items():
        torch.testing.assert_close(params[name], p, rtol=1e-12, atol=1e-12)
    assert stats == pytest.approx(expected_stats, rel=1e-6)  # accuracies are float32 sums
    torch.testing.assert_close(ema, expected_ema)


def test_torchrun_training_matches_one_process(glyphs_root, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = ["train", "--iterations", "3", "--steps", "2", "--algorithm", "lazy-maml", "--data-root", str(glyphs_root),
            "--set", "model.hidden=8", "--quiet", "--no-eval",
            # SGD, not Adam: Adam turns the rounding noise on the (theoretically zero) gradients of conv biases
            # before batch norm into full-size steps, so summation order alone would change those biases.
            "--set", "optim.name=sgd", "--set", "optim.lr=0.1"]
    subprocess.run([sys.executable, "-m", "lazymeta", *args, "--out", str(tmp_path / "one")], check=True, env=env)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                    "-m", "lazymeta", *args, "--out", str(tmp_path / "two")], check=True, env=env)
    one, two = load_file(str(tmp_path / "one" / "model.safetensors")), load_file(str(tmp_path / "two" / "model.safetensors"))
    for name, p in one.items():
        torch.testing.assert_close(two[name], p)  # float32: only the summation order differs
    assert len((tmp_path / "two" / "metrics.jsonl").read_text().splitlines()) == 1  # rank 0 alone logs


def joined_worker(rank, world, port, user_group, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    if user_group:
        dist.init_process_group("gloo")
    with joined() as w:
        reduced = _all_reduce(torch.tensor([float(rank + 1)]))
    torch.save((w, float(reduced), dist.is_initialized()), f"{out}.{rank}")
    if user_group:
        dist.destroy_process_group()


@pytest.mark.parametrize("user_group", [False, True])
def test_joined_leaves_only_the_group_it_created(user_group, tmp_path):
    """Leaving joins gloo's threads before exit (else a late release of a reduced tensor aborts the process);
    a group the caller created stays theirs."""
    mp.start_processes(joined_worker, args=(2, free_port(), user_group, str(tmp_path / "r")), nprocs=2,
                       start_method="spawn")
    for rank in range(2):
        world, reduced, still_joined = torch.load(tmp_path / f"r.{rank}", weights_only=False)
        assert (tuple(world), reduced, still_joined) == ((rank, 2), 3.0, user_group)
