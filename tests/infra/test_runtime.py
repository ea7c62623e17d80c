"""Device selection fails early, with the value and the fix, instead of deep inside a training loop."""
import os
import platform
import subprocess
import sys

import pytest
import torch

from lazymeta.infra.errors import ConfigError
from lazymeta.infra.runtime import keep_freed_memory, pick_device


def test_auto_and_cpu():
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert pick_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("name", ["gpu0", "cuda:99"])
def test_unusable_device_is_a_config_error(name):
    with pytest.raises(ConfigError, match=f"device: '{name}'"):
        pick_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_says_what_to_use():
    with pytest.raises(ConfigError, match="device=auto or cpu"):
        pick_device("cuda")


def test_batch_tasks_and_task_threads_are_exclusive_and_score_chunk_positive():
    from lazymeta.fewshot.config import FewShotConfig, validate
    from lazymeta.infra.config import update

    assert validate(update(FewShotConfig(), {"batch_tasks": True}, "--set")).batch_tasks is True
    assert FewShotConfig().batch_tasks is None  # the learner decides: on a GPU
    with pytest.raises(ConfigError, match=r"--set: teacher: chunk \(candidates per scoring pass\) must be >= 1 or null, got 0"):
        update(FewShotConfig(), {"teacher": {"chunk": 0}}, "--set")
    with pytest.raises(ConfigError, match="batch_tasks and task_threads > 1"):
        validate(update(FewShotConfig(), {"batch_tasks": True, "task_threads": 2}, "--set"))


def test_a_users_malloc_setting_wins(monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")
    assert keep_freed_memory() is False


STUDENT_FAULTS = """
import resource, sys, torch
from lazymeta import Student
from lazymeta.infra.runtime import keep_freed_memory
from lazymeta.learner import classification_losses
from lazymeta.models import Conv4
from lazymeta.params import detach, functional, params_of
if sys.argv[1] == "keep":
    assert keep_freed_memory()
model = Conv4(1, 28, 5, 64)
x, y = torch.rand(5, 1, 28, 28), torch.arange(5)
run = lambda: Student(50, 0.4).run(detach(params_of(model)), classification_losses(functional(model), 5, x, y, x, y)[0])
run()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
run()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 50)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="keep_freed_memory sets glibc's mallopt only")
def test_a_student_step_reuses_its_freed_activations():
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")} | {"OMP_NUM_THREADS": "1"}
    faults = {mode: float(subprocess.run([sys.executable, "-c", STUDENT_FAULTS, mode], env=env, check=True,
                                         capture_output=True, text=True).stdout) for mode in ("keep", "default")}
    # each step's activations come back from the freed blocks, not from fresh pages as with glibc's default
    assert faults["keep"] < faults["default"] / 10, faults
