"""End-to-end ``lazymeta longtail`` runs: every method on long-tailed real MNIST, the CIFAR-100 path on
generated original-format batches with the shipped paper config, and resume equality after a kill."""
import json
from pathlib import Path

import numpy as np
import torch
import pytest
from safetensors.torch import load_file

from lazymeta.data.longtail import tail_counts
from lazymeta import cli
from lazymeta.infra.config import load_yaml, update
from lazymeta.longtail.config import LongtailConfig, validate
from lazymeta.longtail.data import build, load_folder
from lazymeta.longtail.methods import METHODS
from lazymeta.longtail.train import Trainer

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "longtail"
TINY = ["--model", "small-cnn", "--set", "model.hidden=4", "--set", "schedule.reweight_from=1", "--quiet"]


@pytest.mark.data
@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_runs_on_long_tailed_mnist(method, mnist_root, tmp_path, capsys):
    out = tmp_path / "run"
    code = cli.main(["longtail", "--dataset", "mnist-lt", "--data-root", str(mnist_root), "--imbalance", "10",
                     "--method", method, "--epochs", "2", "--seed", "1", "--out", str(out), *TINY,
                     "--set", "data.head=40", "--set", "data.holdout_per_class=5", "--set", "data.flip=false",
                     "--set", "schedule.batch_size=50"])
    assert code == 0, capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    assert results["train_counts"] == tail_counts(10, 40, 10) and results["test_images"] == 10000
    assert 0 <= results["final"]["error"] <= 100 and results["best"]["epoch"] in (1, 2)
    assert {k: g["classes"] for k, g in results["final"]["groups"].items()} == {"many": 0, "medium": 3, "few": 7}
    assert len(results["learned_weights"]["mean"]) == 10 and (out / "weights.png").stat().st_size > 0
    assert [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    assert "best validation epoch" in capsys.readouterr().out


def test_cifar100_path_with_the_paper_config(cifar100_lt_root, tmp_path, capsys):
    out = tmp_path / "run"
    code = cli.main(["longtail", "--config", str(CONFIGS / "cifar100_lt_100.yaml"), "--data-root",
                     str(cifar100_lt_root), "--epochs", "1", "--imbalance", "5", "--out", str(out), "--quiet",
                     "--set", "data.head=10", "--set", "data.holdout_per_class=2", "--set", "model.hidden=4",
                     "--set", "schedule.reweight_from=1"])  # one epoch of the deferred method
    assert code == 0, capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    assert results["dataset"] == "cifar100-lt" and results["model"] == "resnet32"
    assert results["method"] == "lazy-two-component" and len(results["train_counts"]) == 100
    assert results["train_counts"][0] == 10 and results["train_counts"][-1] == 2
    assert results["test_images"] == 200 and results["validation_per_class"] == 2


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_shipped_configs_are_valid(name):
    config = validate(update(LongtailConfig(), load_yaml(CONFIGS / name), name))
    assert config.schedule.epochs == 200 and config.model.name == "resnet32" and config.data.dataset == "cifar100-lt"


def resume_args(root: Path, out: Path, method: str = "lazy-two-component") -> list[str]:
    return ["longtail", "--dataset", "folder-lt", "--data-root", str(root / "images"), "--imbalance", "3",
            "--method", method, "--epochs", "4", "--out", str(out), *TINY,
            "--set", "data.holdout_per_class=3", "--set", "schedule.batch_size=16", "--set", "method.val_batch=8",
            "--set", "schedule.milestones=[2]"]


@pytest.mark.parametrize("method", ["lazy-two-component", "meta-weight-net"])  # MWN: its network and optimizer too
def test_resume_after_a_kill_equals_the_uninterrupted_run(method, image_folder, tmp_path, monkeypatch):
    assert cli.main(resume_args(image_folder, tmp_path / "whole", method)) == 0
    real, calls = Trainer.run_epoch, {"n": 0}

    def dying(self, epoch, stop=None):
        calls["n"] += 1
        if calls["n"] == 3:  # killed inside epoch 3, after the checkpoint of epoch 2
            raise KeyboardInterrupt
        return real(self, epoch, stop)

    monkeypatch.setattr(Trainer, "run_epoch", dying)
    with pytest.raises(KeyboardInterrupt):
        cli.main(resume_args(image_folder, tmp_path / "killed", method))
    monkeypatch.setattr(Trainer, "run_epoch", real)
    assert cli.main(["longtail", "--resume", str(tmp_path / "killed"), "--quiet"]) == 0
    for name in ("model.safetensors", "best.safetensors"):
        whole, resumed = load_file(str(tmp_path / "whole" / name)), load_file(str(tmp_path / "killed" / name))
        assert all(np.array_equal(whole[k].numpy(), resumed[k].numpy()) for k in whole), name
    metrics = [[{k: v for k, v in json.loads(line).items() if k != "seconds"}
                for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()] for run in ("whole", "killed")]
    assert metrics[0] == metrics[1] and len(metrics[0]) == 4
    results = [json.loads((tmp_path / run / "results.json").read_text()) for run in ("whole", "killed")]
    reweighted = {"lazy-two-component": 3, "meta-weight-net": 4}[method]  # deferred: epochs 2-4; MWN: all
    assert results[0] == results[1] and results[0]["magnitudes"]["epochs"] == reweighted


def test_the_lazy_run_logs_its_magnitudes_and_the_reference_protocol(image_folder, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(resume_args(image_folder, out)) == 0
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert "gamma" not in metrics[0] and not metrics[0]["reweight"]  # epoch 1: plain CE before the stage
    for record in metrics[1:]:
        assert record["student_displacement"] > 0 and record["lookahead_step"] > 0 and record["eps_relative"] > 0
        assert 0.75 <= record["gamma"] <= 0.95 and set(record["gamma_histogram"]) == {"0.75", "0.8", "0.85", "0.9",
                                                                                    "0.95"}
    results = json.loads((out / "results.json").read_text())
    errors = [r["test_error"] for r in metrics]
    assert results["best_test"] == {"epoch": errors.index(min(errors)) + 1, "error": min(errors)}
    assert results["final"]["error"] == pytest.approx(errors[-1])
    m = results["magnitudes"]
    steps = sum(metrics[1]["gamma_histogram"].values())
    assert sum(m["gamma_histogram"].values()) == 3 * steps and 0 <= m["gamma_low"] + m["gamma_high"] <= 1
    assert m["student_displacement"] == pytest.approx(np.mean([r["student_displacement"] for r in metrics[1:]]))
    printed = capsys.readouterr().out
    assert "best test epoch" in printed and "selects the epoch on the test set" in printed and "‖φ_k − θ̃‖" in printed


def test_an_existing_run_is_not_overwritten(image_folder, tmp_path, capsys):
    args = resume_args(image_folder, tmp_path / "run")
    args[args.index("--epochs") + 1] = "1"
    assert cli.main(args) == 0
    assert cli.main(args) == 2 and "already holds a run" in capsys.readouterr().err


def test_folder_reader_and_the_two_builders(image_folder):
    train = load_folder(image_folder / "images", "train")
    assert train.images.shape == (120, 3, 12, 12) and train.classes == ("c0", "c1", "c2", "c3")
    cui = build("folder-lt", str(image_folder / "images"), 10, None, 0)
    assert cui.val is None and cui.counts() == tail_counts(4, 30, 10) == [30, 13, 6, 3]
    two_component = build("folder-lt", str(image_folder / "images"), 10, None, 2)
    assert two_component.counts() == tail_counts(4, 28, 10) and len(two_component.val.labels) == 8


@pytest.mark.parametrize("setting, message", [
    (["--set", "method.eps=1"], "unknown key 'eps'"),
    (["--set", "method.lookahead_scale=0"], "method.lookahead_scale must be > 0"),
    (["--set", "method.mwn.optimizer=rmsprop"], "method.mwn.optimizer must be one of"),
    (["--set", "data.holdout_per_class=0"], "learns from a balanced validation set"),
    (["--dataset", "folder"], "named <dataset>-lt"),
])
def test_configuration_errors_are_named(image_folder, tmp_path, capsys, setting, message):
    args = resume_args(image_folder, tmp_path / "run") + setting
    assert cli.main(args) == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("method, settings, lookahead, student", [
    ("two-component", {}, 16 * 0.01, None),  # the reference's step on the summed loss: |B| x the rate on the mean
    ("lazy-two-component", {}, 16 * 0.01, 16 * 0.01),
    ("lazy-two-component", {"student_scale": 2.0}, 16 * 0.01, 2 * 0.01),
    ("lazy-two-component", {"lookahead_scale": 3.0}, 3 * 0.01, 3 * 0.01),
    ("meta-weight-net", {}, 0.01, None),  # its code steps on the normalised (mean) loss
])
def test_look_ahead_and_student_rates_follow_the_reference_scale(image_folder, method, settings, lookahead, student):
    config = update(LongtailConfig(), {"data": {"dataset": "folder-lt", "root": str(image_folder / "images"),
                                                "imbalance": 3, "holdout_per_class": 3},
                                       "model": {"name": "small-cnn", "hidden": 4},
                                       "method": {"name": method, **settings}}, "test")
    data = build("folder-lt", config.data.root, 3, None, 3)
    ctx = Trainer(validate(config), data, torch.device("cpu")).context(lr=0.01, epoch=0, step=0, batch=16)
    assert ctx.lr == pytest.approx(lookahead)
    assert (ctx.student.lr if ctx.student else None) == (pytest.approx(student) if student else None)


def test_ctrl_c_stops_between_batches_and_the_run_resumes(image_folder, tmp_path, monkeypatch, capsys):
    """The first SIGINT only asks to stop: the epoch ends at its next batch, the last finished epoch is
    the checkpoint, and the command says how to continue (exit 130)."""
    import os
    import signal

    real, calls = Trainer.run_epoch, {"n": 0}

    def interrupted(self, epoch, stop=None):
        calls["n"] += 1
        if calls["n"] == 2:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C during epoch 2
        return real(self, epoch, stop)

    monkeypatch.setattr(Trainer, "run_epoch", interrupted)
    run = tmp_path / "run"
    assert cli.main(resume_args(image_folder, run)) == 130
    assert f"stopped during epoch 2; the checkpoint holds epoch 1: continue with `lazymeta longtail --resume {run}`" \
        in capsys.readouterr().err
    monkeypatch.setattr(Trainer, "run_epoch", real)
    assert cli.main(["longtail", "--resume", str(run), "--method", "cross-entropy", "--quiet"]) == 2
    assert "method.name ('lazy-two-component' -> 'cross-entropy') would change what it computes" in \
        capsys.readouterr().err
    assert cli.main(["longtail", "--resume", str(run), "--epochs", "5", "--quiet"]) == 0
    assert [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4, 5]
