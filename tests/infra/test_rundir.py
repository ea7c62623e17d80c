"""The one run directory of every application: lock, refusal, resume, metrics truncation, unreadable files."""
import json

import pytest
import torch

from lazymeta.infra.errors import RunDirError
from lazymeta.infra.files import load_torch, load_weights, save_weights
from lazymeta.infra.rundir import METRICS, STATE, RunDir

CONFIG = {"seed": 0, "algorithm": {"name": "lazy-maml"}}


def test_a_second_holder_is_refused_and_told_who_holds_it(tmp_path):
    with RunDir(tmp_path / "run").open(CONFIG):
        with pytest.raises(RunDirError, match=r"is in use by process \d+ on .*; wait for it to finish"):
            with RunDir(tmp_path / "run").open(CONFIG, existing="reuse"):
                pass
    with RunDir(tmp_path / "run").open(CONFIG, existing="reuse"):  # released when the first one closed
        pass


def test_refuse_resume_and_reuse(tmp_path):
    run = RunDir(tmp_path / "run")
    with run.open(CONFIG):
        run.log({"iteration": 1, "loss": 0.5})
        run.save_state({"iteration": 1})
    with pytest.raises(RunDirError, match="already holds a run; continue it with --resume"):
        with RunDir(tmp_path / "run").open(CONFIG):
            pass
    with pytest.raises(RunDirError, match="has no checkpoint to resume from"):
        with RunDir(tmp_path / "other").open(CONFIG, existing="resume"):
            pass
    with RunDir(tmp_path / "run").open(CONFIG, existing="resume") as again:
        assert again.load_state() == {"iteration": 1}
    assert RunDir.read_config(tmp_path / "run") == CONFIG


def test_a_fresh_start_drops_the_log_of_a_run_killed_before_its_first_checkpoint(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / METRICS).write_text('{"iteration": 1}\n{"iteration": 2}\n')
    run = RunDir(tmp_path / "run")
    with run.open(CONFIG):
        run.log({"iteration": 1, "loss": 1.0})
    assert [r["iteration"] for r in run.metrics()] == [1]


def test_truncate_keeps_the_lines_up_to_the_checkpoint(tmp_path):
    run = RunDir(tmp_path / "run", step="epoch")
    with run.open(CONFIG):
        for epoch in range(1, 6):
            run.log({"epoch": epoch, "loss": 1.0 / epoch})
        run.truncate(3)
    assert [r["epoch"] for r in run.metrics()] == [1, 2, 3]


@pytest.mark.parametrize("out, message", [("file", "is a file, not a directory"),
                                          ("file/run", "lies under a file, not a directory")])
def test_an_out_that_cannot_be_a_directory_is_named(tmp_path, out, message):
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirError, match=message):
        with RunDir(tmp_path / out).open(CONFIG):
            pass


def test_cut_short_weights_and_checkpoints_are_named_errors(tmp_path):
    save_weights(tmp_path / "model.safetensors", {"w": torch.ones(3)})
    torch.save({"iteration": 3}, tmp_path / STATE)
    for name in ("model.safetensors", STATE):
        data = (tmp_path / name).read_bytes()
        (tmp_path / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(RunDirError, match=r"model.safetensors is not a readable safetensors file .* restore it"):
        load_weights(tmp_path / "model.safetensors")
    (tmp_path / "empty.safetensors").write_bytes(b"")
    with pytest.raises(RunDirError, match="empty.safetensors is not a readable safetensors file"):
        load_weights(tmp_path / "empty.safetensors")
    with pytest.raises(RunDirError, match=r"state.pt is not a readable checkpoint .* start the run again"):
        load_torch(tmp_path / STATE)


def test_metrics_are_tensorboard_scalars_where_tensorboard_is_installed(tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard package (lazymeta[track]) is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = RunDir(tmp_path / "run")
    with run.open(CONFIG):
        run.log({"iteration": 10, "loss": 0.25, "accuracy": 0.5})
        run.log({"iteration": 20, "loss": 0.125, "accuracy": 0.75})
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("loss")] == [(10, 0.25), (20, 0.125)]
    assert json.loads((tmp_path / "run" / METRICS).read_text().splitlines()[1])["accuracy"] == 0.75


def test_tensorboard_can_be_turned_off(tmp_path):
    run = RunDir(tmp_path / "run", tensorboard=False)
    with run.open(CONFIG):
        run.log({"iteration": 1, "loss": 0.5})
    assert not (tmp_path / "run" / "tensorboard").exists()
