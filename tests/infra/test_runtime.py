"""Device selection fails early, with the value and the fix, instead of deep inside a training loop."""
import pytest
import torch

from lazymeta.infra.errors import ConfigError
import os
import platform
import resource

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


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="keep_freed_memory sets glibc's mallopt only")
def test_freed_blocks_are_reused_without_page_faults(monkeypatch):
    for key in [k for k in os.environ if k.startswith("MALLOC_")]:
        monkeypatch.delenv(key)
    assert keep_freed_memory() is True
    for _ in range(3):  # a 4 MB activation allocated, written and freed, as a student step does k times
        torch.ones(1 << 20)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        torch.ones(1 << 20)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before < 20 * 256 // 4  # not a fresh mapping each time
