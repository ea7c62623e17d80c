"""A killed run resumes from its last checkpoint and ends exactly where an uninterrupted run ends."""
import os
import signal
import subprocess
import sys
import time

import pytest
from safetensors.torch import load_file

import lazymeta.learner
from lazymeta.fewshot.config import FewShotConfig
from lazymeta.infra.config import update
from lazymeta.fewshot.train import train
from lazymeta.infra.errors import RunDirError, TrainingError


def toy_config(root, iterations=6):
    return update(FewShotConfig(), {
        "data": {"root": str(root)}, "model": {"hidden": 8}, "iterations": iterations, "checkpoint_every": 2,
        "log_every": 1, "episodes": {"ways": 3}, "algorithm": {"name": "lazy-maml", "steps": 3}}, "test")


@pytest.fixture
def data_root(glyphs_root):
    return str(glyphs_root)


def weights(run_dir):
    return load_file(str(run_dir / "model.safetensors"))


def test_resume_after_an_interruption_equals_the_uninterrupted_run(data_root, tmp_path, monkeypatch):
    train(toy_config(data_root), tmp_path / "whole", progress=False)
    real_step = lazymeta.learner.MetaLearner.meta_step
    calls = {"n": 0}

    def dying_step(self, tasks):
        calls["n"] += 1
        if calls["n"] == 4:  # dies in iteration 4, after the checkpoint of iteration 2
            raise KeyboardInterrupt
        return real_step(self, tasks)

    monkeypatch.setattr(lazymeta.learner.MetaLearner, "meta_step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        train(toy_config(data_root), tmp_path / "cut", progress=False)
    monkeypatch.setattr(lazymeta.learner.MetaLearner, "meta_step", real_step)
    train(toy_config(data_root), tmp_path / "cut", resume=True, progress=False)
    for name, tensor in weights(tmp_path / "whole").items():
        assert (weights(tmp_path / "cut")[name] == tensor).all(), name
    logged = [line for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [int(line.split('"iteration": ')[1].split(",")[0]) for line in logged] == [1, 2, 3, 4, 5, 6]


def test_sigkill_then_resume_from_the_command_line(data_root, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    common = ["--set", "model.hidden=8", "--set", "checkpoint_every=2", "--quiet", "--no-eval"]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    cli = [sys.executable, "-m", "lazymeta", "train"]
    args = ["--iterations", "40", "--steps", "3", "--algorithm", "lazy-reptile", "--data-root", str(data_root)]
    subprocess.run([*cli, *args, "--out", str(whole), *common], check=True, env=env)
    proc = subprocess.Popen([*cli, *args, "--out", str(cut), *common], env=env)
    deadline = time.time() + 120
    while not (cut / "state.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    subprocess.run([*cli, "--resume", str(cut), "--quiet", "--no-eval"], check=True, env=env)
    for name, tensor in weights(whole).items():
        assert (weights(cut)[name] == tensor).all(), name


def test_a_finished_run_directory_is_not_overwritten(data_root, tmp_path):
    train(toy_config(data_root, iterations=1), tmp_path / "run", progress=False)
    with pytest.raises(RunDirError, match="--resume"):
        train(toy_config(data_root, iterations=1), tmp_path / "run", progress=False)


def test_non_finite_loss_names_iteration_and_task(data_root, tmp_path):
    config = toy_config(data_root, iterations=3)
    config.algorithm.inner_lr = 1e30
    with pytest.raises(TrainingError, match=r"iteration 1: non-finite validation loss .* in task 0"):
        train(config, tmp_path / "run", progress=False)
