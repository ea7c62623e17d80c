"""End-to-end runs through the command line on the embedded glyphs dataset, at toy scale."""
import json
import os
import subprocess
import sys
import time

import pytest
import torch
from PIL import Image

import lazymeta
from lazymeta.algorithms import ALGORITHMS
from lazymeta.cli import main
from lazymeta.fewshot.config import FewShotConfig
from lazymeta.fewshot.train import GraphMemoryWarning, train
from lazymeta.infra.config import update
from lazymeta.infra.errors import RunDirError

TOY = ["--set", "model.hidden=8", "--set", "eval_episodes=5", "--set", "checkpoint_every=2", "--quiet"]


@pytest.fixture
def data_root(glyphs_root):
    return str(glyphs_root)


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_every_algorithm_trains_and_evaluates_from_the_cli(algorithm, data_root, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--algorithm", algorithm, "--ways", "3", "--shots", "2", "--steps", "3", "--iterations", "3",
            "--seed", "1", "--data-root", data_root, "--out", str(out), "--set", "algorithm.keep_last=2",
            "--set", "teacher.chunk=8", *TOY]  # candidates vmapped in chunks, as on a GPU
    assert main(args) == 0
    assert "accuracy (transductive BN)" in capsys.readouterr().out
    for name in ("config.yaml", "metrics.jsonl", "state.pt", "model.safetensors", "results.json"):
        assert (out / name).exists(), name
    assert main(["eval", str(out), "--episodes", "4", "--json", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["episodes"] == 4 and report["ways"] == 3 and report["shots"] == 2
    assert 0 <= report["accuracy"] <= 100 and report["ci95"] >= 0 and report["algorithm"] == algorithm
    assert report["support"]["accuracy"] >= 0


def test_loaded_learner_adapts_to_a_users_own_images(data_root, tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--iterations", "2", "--steps", "2", "--data-root", data_root, "--out", str(out),
                 "--no-eval", *TOY]) == 0
    learner = lazymeta.load(out)
    # a user's own support set: PIL images of any size, arbitrary label values, fewer ways than the head
    images = [Image.new("L", (50, 40), color=255 - 80 * i) for i in range(3)]
    support_x = torch.stack([learner.transform(im) for im in images])
    assert support_x.shape == (3, 1, 28, 28)
    task = learner.adapt(support_x, torch.tensor([7, 3, 9]))
    predictions = task.predict(support_x)
    assert set(predictions.tolist()) <= {3, 7, 9}
    with pytest.raises(ValueError, match="head has 5"):
        learner.adapt(torch.zeros(6, 1, 28, 28), torch.arange(6))


@pytest.mark.parametrize("args, message", [
    (["--ways", "5000"], "fewer than ways=5000"),
    (["--set", "algorithm.steps=many"], "algorithm: steps: expected int"),
    (["--set", "algorithm.colour=red"], "unknown key 'colour'"),
    (["--set", "optim.name=rmsprop"], "optim.name must be adam or sgd"),
    (["--set", "teacher.alpha_step=0"], "--set: teacher: alpha_step must be in (0, 1] and divide 1"),
    (["--set", "log_every=0"], "log_every must be >= 1, got 0"),
    (["--set", "algorithm.keep_last=0"], "algorithm.keep_last (b, checkpoints the teacher leaps toward) must be >= 1"),
    (["--set", "optim.lr=nan"], "--set: optim: lr: expected a number, got 'nan'"),
])
def test_bad_configuration_is_a_clear_error(args, message, data_root, tmp_path, capsys):
    assert main(["train", "--data-root", data_root, "--out", str(tmp_path / "r"), *args, *TOY]) == 2
    assert message in capsys.readouterr().err


def test_training_reports_its_untrained_start_and_eval_writes_beside_the_result(data_root, tmp_path, capsys):
    trained, start = tmp_path / "trained", tmp_path / "start"
    common = ["--steps", "2", "--data-root", data_root, "--set", "eval_episodes=6", *TOY]
    assert main(["train", "--iterations", "3", "--out", str(trained), *common]) == 0
    out = capsys.readouterr().out
    assert "untrained start (transductive BN)" in out
    assert main(["train", "--iterations", "0", "--out", str(start), *common]) == 0
    capsys.readouterr()
    result = json.loads((trained / "results.json").read_text())
    from_zero = json.loads((start / "results.json").read_text())
    # the untrained start is the same θ as a run of 0 iterations, on the same episodes
    assert result["untrained"]["transductive"] == from_zero["transductive"]
    assert main(["eval", str(trained), "--episodes", "4", "--quiet"]) == 0
    assert f"written to {trained / 'eval-test-4ep.json'}" in capsys.readouterr().out
    assert json.loads((trained / "results.json").read_text()) == result  # the training result stays
    assert json.loads((trained / "eval-test-4ep.json").read_text())["episodes"] == 4


def _trained(data_root, out) -> None:
    assert main(["train", "--iterations", "1", "--steps", "1", "--data-root", data_root, "--out", str(out),
                 "--no-eval", *TOY]) == 0


@pytest.mark.parametrize("cut", ["empty", "half"])
def test_eval_of_a_cut_short_model_file_is_one_line(cut, data_root, tmp_path, capsys):
    out = tmp_path / "run"
    _trained(data_root, out)
    data = (out / "model.safetensors").read_bytes()
    (out / "model.safetensors").write_bytes(b"" if cut == "empty" else data[: len(data) // 2])
    assert main(["eval", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "model.safetensors is not a readable safetensors file" in err
    with pytest.raises(RunDirError, match="model.safetensors is not a readable"):
        lazymeta.load(out)


def test_resume_from_a_cut_short_checkpoint_is_one_line(data_root, tmp_path, capsys):
    out = tmp_path / "run"
    _trained(data_root, out)
    data = (out / "state.pt").read_bytes()
    (out / "state.pt").write_bytes(data[: len(data) // 3])
    assert main(["train", "--resume", str(out), "--iterations", "2", "--quiet", "--no-eval"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "state.pt is not a readable checkpoint" in err


def test_second_order_maml_with_a_long_horizon_warns_about_memory(data_root, tmp_path):
    config = update(FewShotConfig(), {"data": {"root": data_root}, "model": {"hidden": 8}, "iterations": 0,
                                      "algorithm": {"name": "maml", "steps": 500}}, "test")
    with pytest.warns(GraphMemoryWarning, match="memory grows linearly with k; lazy-maml"):
        train(config, tmp_path / "run", progress=False)


def test_a_run_directory_in_use_is_refused_naming_the_process(data_root, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "run"
    cli = [sys.executable, "-m", "lazymeta", "train", "--data-root", data_root, "--out", str(out), "--quiet",
           "--no-eval", "--set", "model.hidden=8"]
    first = subprocess.Popen([*cli, "--iterations", "100000"], env=env)
    try:
        deadline = time.time() + 120
        while not (out / ".lock").exists() or not (out / ".lock").read_text().strip():
            assert time.time() < deadline and first.poll() is None
            time.sleep(0.05)
        second = subprocess.run([*cli, "--iterations", "1"], env=env, capture_output=True, text=True)
        assert second.returncode == 2
        assert f"is in use by process {first.pid}" in second.stderr and "Traceback" not in second.stderr
    finally:
        first.kill()
        first.wait()


def test_missing_dataset_files_are_named_with_where_to_put_them(tmp_path, capsys):
    assert main(["train", "--dataset", "omniglot", "--data-root", str(tmp_path), "--out", str(tmp_path / "r"),
                 *TOY]) == 2
    err = capsys.readouterr().err
    assert "images_background.zip (md5 68d2efa1b9178cc56df9314c21c6e718)" in err
    assert f"Put the file(s) in {tmp_path / 'omniglot'}/" in err and "Traceback" not in err


def test_config_file_and_flags_compose(data_root, tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("algorithm:\n  name: fomaml\n  steps: 2\niterations: 1\nepisodes:\n  ways: 4\n")
    out = tmp_path / "run"
    assert main(["train", "--config", str(config), "--ways", "3", "--data-root", data_root, "--out", str(out),
                 "--no-eval", *TOY]) == 0
    resolved = (out / "config.yaml").read_text()
    assert "name: fomaml" in resolved and "ways: 3" in resolved and "steps: 2" in resolved


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_training_resume_and_eval_on_cuda(data_root, tmp_path, capsys):
    out = tmp_path / "run"
    common = ["--algorithm", "lazy-maml", "--steps", "3", "--data-root", data_root, "--out", str(out),
              "--set", "device=cuda", *TOY]  # batch_tasks: null, so batched on the GPU
    assert main(["train", "--iterations", "2", "--no-eval", *common]) == 0
    torch.cuda.reset_peak_memory_stats()
    assert main(["train", "--resume", str(out), "--iterations", "4", "--quiet"]) == 0
    assert torch.cuda.max_memory_allocated() > 0  # it ran on the GPU
    assert "accuracy (transductive BN)" in capsys.readouterr().out
    assert main(["eval", str(out), "--episodes", "4", "--json", "--device", "cpu", "--quiet"]) == 0
    assert 0 <= json.loads(capsys.readouterr().out)["accuracy"] <= 100
