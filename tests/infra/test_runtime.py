"""Device selection fails early, with the value and the fix, instead of deep inside a training loop."""
import pytest
import torch

from lazymeta.infra.errors import ConfigError
from lazymeta.infra.runtime import pick_device


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
