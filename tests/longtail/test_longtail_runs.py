"""End-to-end ``lazymeta longtail`` runs: every method on long-tailed real MNIST, the CIFAR-100 path on
generated original-format batches with the shipped paper config, and resume equality after a kill."""
import json
from pathlib import Path

import numpy as np
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


def resume_args(root: Path, out: Path) -> list[str]:
    return ["longtail", "--dataset", "folder-lt", "--data-root", str(root / "images"), "--imbalance", "3",
            "--method", "lazy-two-component", "--epochs", "4", "--out", str(out), *TINY,
            "--set", "data.holdout_per_class=3", "--set", "schedule.batch_size=16", "--set", "method.val_batch=8",
            "--set", "schedule.milestones=[2]"]


def test_resume_after_a_kill_equals_the_uninterrupted_run(image_folder, tmp_path, monkeypatch):
    assert cli.main(resume_args(image_folder, tmp_path / "whole")) == 0
    real, calls = Trainer.run_epoch, {"n": 0}

    def dying(self, epoch):
        calls["n"] += 1
        if calls["n"] == 3:  # killed inside epoch 3, after the checkpoint of epoch 2
            raise KeyboardInterrupt
        return real(self, epoch)

    monkeypatch.setattr(Trainer, "run_epoch", dying)
    with pytest.raises(KeyboardInterrupt):
        cli.main(resume_args(image_folder, tmp_path / "killed"))
    monkeypatch.setattr(Trainer, "run_epoch", real)
    assert cli.main(["longtail", "--resume", str(tmp_path / "killed"), "--quiet"]) == 0
    for name in ("model.safetensors", "best.safetensors"):
        whole, resumed = load_file(str(tmp_path / "whole" / name)), load_file(str(tmp_path / "killed" / name))
        assert all(np.array_equal(whole[k].numpy(), resumed[k].numpy()) for k in whole), name
    metrics = [[{k: v for k, v in json.loads(line).items() if k != "seconds"}
                for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()] for run in ("whole", "killed")]
    assert metrics[0] == metrics[1] and len(metrics[0]) == 4
    results = [json.loads((tmp_path / run / "results.json").read_text()) for run in ("whole", "killed")]
    assert results[0] == results[1]


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
    (["--set", "data.holdout_per_class=0"], "learns from a balanced validation set"),
    (["--dataset", "folder"], "named <dataset>-lt"),
])
def test_configuration_errors_are_named(image_folder, tmp_path, capsys, setting, message):
    args = resume_args(image_folder, tmp_path / "run") + setting
    assert cli.main(args) == 2 and message in capsys.readouterr().err
