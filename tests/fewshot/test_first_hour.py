"""What a new user loses time or data to, each reproduced first: killed and interrupted runs, resumes with other
flags, settings that would fail only after training, and images passed one at a time."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

import lazymeta
from lazymeta.cli import main

TOY = ["--set", "model.hidden=4", "--set", "eval_episodes=2", "--set", "eval_untrained=false", "--quiet"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture
def data_root(glyphs_root):
    return str(glyphs_root)


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "lazymeta", "train", *args]


def wait_for(predicate, proc, seconds=120):
    deadline = time.time() + seconds
    while not predicate():
        assert time.time() < deadline and proc.poll() is None, "the run ended or stalled first"
        time.sleep(0.05)


def logged_iterations(run):
    return [json.loads(line)["iteration"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_a_run_killed_before_its_first_checkpoint_starts_clean(data_root, tmp_path):
    run = tmp_path / "run"
    args = ["--data-root", data_root, "--out", str(run), "--steps", "2", "--set", "log_every=1",
            "--set", "checkpoint_every=1000", "--no-eval", *TOY]
    proc = subprocess.Popen(cli(*args, "--iterations", "1000"), env=ENV)
    wait_for(lambda: (run / "metrics.jsonl").exists() and len(logged_iterations(run)) >= 3, proc)
    proc.kill()
    proc.wait()
    assert not (run / "state.pt").exists()
    subprocess.run(cli(*args, "--iterations", "4"), env=ENV, check=True)
    assert logged_iterations(run) == [1, 2, 3, 4]


def test_ctrl_c_writes_a_checkpoint_says_how_to_resume_and_exits_130(data_root, tmp_path):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    args = ["--data-root", data_root, "--steps", "2", "--iterations", "60", "--set", "checkpoint_every=1000",
            "--set", "log_every=1", "--no-eval", *TOY]
    subprocess.run(cli(*args, "--out", str(whole)), env=ENV, check=True)
    proc = subprocess.Popen(cli(*args, "--out", str(cut)), env=ENV, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: (cut / "metrics.jsonl").exists() and len(logged_iterations(cut)) >= 5, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err
    assert f"continue with `lazymeta train --resume {cut}`" in err
    stopped = torch.load(cut / "state.pt", weights_only=True)["iteration"]
    assert 5 <= stopped < 60 and logged_iterations(cut)[-1] == stopped
    subprocess.run(cli("--resume", str(cut), "--quiet", "--no-eval"), env=ENV, check=True)
    for name, tensor in load_file(str(whole / "model.safetensors")).items():
        assert torch.equal(load_file(str(cut / "model.safetensors"))[name], tensor), name


def test_a_resume_applies_length_and_speed_and_refuses_the_rest(data_root, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data-root", data_root, "--out", str(run), "--steps", "2", "--iterations", "3",
                 "--no-eval", *TOY]) == 0
    for flags, message in [(["--ways", "3"], "episodes.ways (5 -> 3) would change what it computes"),
                           (["--algorithm", "maml"], "algorithm.name ('lazy-maml' -> 'maml')"),
                           (["--set", "teacher.reading=literal"], "teacher.reading"),
                           (["--iterations", "2"], "is at iteration 3; iterations=2 cannot undo that")]:
        assert main(["train", "--resume", str(run), *flags, "--no-eval", "--quiet"]) == 2
        assert message in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "--iterations", "5", "--set", "task_threads=2", "--no-eval",
                 "--quiet"]) == 0
    assert logged_iterations(run)[-1] == 5 and "task_threads: 2" in (run / "config.yaml").read_text()
    assert torch.load(run / "state.pt", weights_only=True)["op_threads"] == torch.get_num_threads()


def test_continue_resumes_the_same_run_and_refuses_another(data_root, tmp_path, capsys):
    run = tmp_path / "run"
    common = ["train", "--data-root", data_root, "--out", str(run), "--steps", "2", "--no-eval", *TOY]
    assert main([*common, "--iterations", "2", "--continue"]) == 0  # nothing there yet: starts
    assert main([*common, "--iterations", "4", "--continue"]) == 0  # the same run, longer: resumes
    assert logged_iterations(run)[-1] == 4
    assert main([*common, "--iterations", "4", "--ways", "3", "--continue"]) == 2
    assert "holds another run (it differs in episodes.ways)" in capsys.readouterr().err


def test_a_split_too_small_for_the_task_fails_before_training(data_root, tmp_path, capsys):
    # the glyphs test split has 591 characters, the train split more: training would run, evaluation fail
    assert main(["train", "--data-root", data_root, "--out", str(tmp_path / "run"), "--ways", "700",
                 "--iterations", "50", *TOY]) == 2
    assert "split 'test' has 591 classes" in capsys.readouterr().err
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


@pytest.mark.parametrize("episodes", ["0", "1", "-3"])
def test_too_few_evaluation_episodes_is_a_clear_error(episodes, data_root, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data-root", data_root, "--out", str(run), "--iterations", "1", "--no-eval", *TOY]) == 0
    assert main(["eval", str(run), "--episodes", episodes, "--quiet"]) == 2
    assert f"episodes must be >= 2 (a 95% confidence interval needs two), got {episodes}" in capsys.readouterr().err


@pytest.mark.parametrize("episodes", ["0", "1", "-3"])
def test_too_few_episodes_after_training_fail_before_training(episodes, data_root, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data-root", data_root, "--out", str(run), "--iterations", "1", "--episodes", episodes,
                 *TOY]) == 2
    assert f"eval_episodes must be >= 2 (a confidence interval needs two), got {episodes}" in capsys.readouterr().err
    assert not run.exists()


def test_a_binary_config_file_is_named(tmp_path, capsys):
    config = tmp_path / "image.yaml"
    config.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "run")]) == 2
    assert f"config file {config} is not a text file" in capsys.readouterr().err


def test_an_out_that_is_a_file_is_one_line(data_root, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["train", "--data-root", data_root, "--out", str(tmp_path / "file"), "--iterations", "1",
                 *TOY]) == 2
    err = capsys.readouterr().err
    assert "is a file, not a directory: choose another --out" in err and err.count("\n") == 1


def test_one_unbatched_image_is_predicted(data_root, tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--data-root", data_root, "--out", str(run), "--iterations", "1", "--no-eval", *TOY]) == 0
    learner = lazymeta.load(run)
    support = torch.rand(3, 1, 28, 28)
    task = learner.adapt(support, torch.tensor([4, 5, 6]))
    assert task.predict(support[0]).shape == (1,) and int(task.predict(support[0], bn="support")[0]) in (4, 5, 6)
    with pytest.raises(ValueError, match=r"shaped like the support set's \(1, 28, 28\)"):
        task.predict(torch.rand(28, 28))


def test_output_to_a_file_prints_progress_lines():
    lines = subprocess.run([sys.executable, "-c", "import sys; from lazymeta.infra.progress import progress\n"
                            "for _ in progress(range(3), 3, 'meta-train', every_s=0): pass"],
                           capture_output=True, text=True, env=ENV).stderr.splitlines()
    assert lines[-1].startswith("meta-train: 3/3 it (") and "left)" in lines[-1] and len(lines) == 3
