"""CPU threads that hold up under load: one op thread and the meta-batch's tasks and the test episodes in
threads by default, an explicit setting always winning, and the same numbers whichever is used."""
import json

import pytest
import torch

from lazymeta.fewshot.config import FewShotConfig
from lazymeta.fewshot.evaluate import evaluate
from lazymeta.fewshot.train import build_sampler, evaluate_run, load_run, train
from lazymeta.infra.config import update
from lazymeta.infra.runtime import cpu_threads

CPU = torch.device("cpu")


def test_defaults_are_one_op_thread_and_tasks_across_the_cores(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert cpu_threads(None, None, tasks=2, device=CPU) == (1, 2)  # no more threads than tasks
    assert cpu_threads(None, None, tasks=8, device=CPU) == (1, 4)
    assert cpu_threads(2, None, tasks=8, device=CPU) == (2, 2)  # explicit op threads: the cores left for tasks
    assert cpu_threads(None, 3, tasks=8, device=CPU) == (1, 3)  # explicit task threads win
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # torchrun: two processes share the cores
    assert cpu_threads(None, None, tasks=8, device=CPU) == (1, 2)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the user's environment wins too
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert cpu_threads(None, None, tasks=8, device=CPU) == (2, 1)


def config(root, **values):
    base = {"data": {"root": str(root)}, "model": {"hidden": 4}, "iterations": 3, "eval_episodes": 6,
            "algorithm": {"steps": 2}, "optim": {"meta_batch": 4}}
    return update(FewShotConfig(), {**base, **values}, "test")


def test_task_threads_train_the_same_model_as_one_thread(glyphs_root, tmp_path):
    train(config(glyphs_root, task_threads=1, threads=1), tmp_path / "one", progress=False)
    train(config(glyphs_root, task_threads=2, threads=1), tmp_path / "two", progress=False)
    one, two = (load_run(tmp_path / name)[0].model.state_dict() for name in ("one", "two"))
    for name, tensor in one.items():
        assert torch.equal(tensor, two[name]), name


def test_episodes_in_threads_score_as_one_by_one(glyphs_root, tmp_path):
    train(config(glyphs_root), tmp_path / "run", progress=False)
    learner, cfg = load_run(tmp_path / "run")
    sampler = build_sampler(cfg, "test", seed=0, train=False)
    alone, threaded = (evaluate(learner, sampler, 6, progress=False, threads=n) for n in (1, 3))
    assert alone == threaded
    report = evaluate_run(tmp_path / "run", progress=False)  # the run's defaults: episodes in threads
    assert report["transductive"] == alone["transductive"]
    assert json.loads((tmp_path / "run" / "results.json").read_text())["episodes"] == 6


@pytest.mark.parametrize("value", [0, -1])
def test_bad_thread_counts_are_named(value, glyphs_root):
    from lazymeta.fewshot.config import validate
    from lazymeta.infra.errors import ConfigError

    with pytest.raises(ConfigError, match="task_threads must be >= 1 or null"):
        validate(config(glyphs_root, task_threads=value))
