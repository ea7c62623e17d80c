"""A meta-attack on a tiny real MNIST target succeeds on most images with fewer queries than ZOO,
and the command line caches its stages in the run directory."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lazymeta.attack.config import AttackLoopConfig
from lazymeta.attack.loop import attack
from lazymeta.cli import main
from lazymeta.attack.metaattacker import MetaTrainConfig, meta_train
from lazymeta.models.attack import meta_attacker

pytestmark = pytest.mark.data


def test_meta_attack_beats_zoo_on_queries(tiny_zoo, target_test_set, tasks):
    train_tasks, _ = tasks
    torch.manual_seed(0)
    attacker = meta_attacker("mnist", width_divisor=4)
    meta_train(attacker, train_tasks, MetaTrainConfig(iterations=10, support=8, query=8), torch.Generator().manual_seed(0))
    x, y = (t[:5] for t in target_test_set)
    settings = AttackLoopConfig(max_iterations=200, step_lr=0.02, finetune_steps=10, l2_threshold=20.0)
    meta = attack("meta", tiny_zoo["net4"], x, y, settings, attacker=attacker)
    zoo = attack("zoo", tiny_zoo["net4"], x, y, settings)
    assert meta.success.float().mean() >= 0.8 and zoo.success.float().mean() >= 0.8
    assert meta.queries[meta.success].float().mean() < zoo.queries[zoo.success].float().mean()
    assert (meta.images >= 0).all() and (meta.images <= 1).all()
    assert torch.allclose(meta.l2, (meta.images - x).flatten(1).norm(dim=1))


TINY = ["data.train_images=1000", "data.gradient_images=200", "data.attack_images=3", "zoo.epochs=1",
        "zoo.lr=0.05", "attacker_width_divisor=8", "attack.max_iterations=3", "attack.finetune_steps=1",
        "attack.nes_samples=2", "whitebox=[lenet5]"] + [
    f"{section}.{key}" for section in ("meta", "lazy", "long") for key in ("iterations=1", "support=4", "query=4",
                                                                           "steps=2")] + ["meta.steps=1"]
METHODS = ["lazy-meta", "meta", "meta-long", "nes", "untrained", "zoo"]


def test_cli_runs_every_stage_and_reuses_cached_ones(mnist_root, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--out", str(out), "--quiet"]
    for setting in [f"data.root={mnist_root}", *TINY]:
        args += ["--set", setting]
    assert main(["attack", "train-zoo", *args]) == 0
    (zoo_dir,) = (out / "zoo").iterdir()
    stamps = {p.name: p.stat().st_mtime_ns for p in zoo_dir.glob("*.safetensors")}
    assert sorted(stamps) == ["lenet5.safetensors", "net4.safetensors"]
    assert main(["attack", "run", *args, "--set", "device=cpu"]) == 0  # the device is not part of any cache key
    assert {p.name: p.stat().st_mtime_ns for p in zoo_dir.glob("*.safetensors")} == stamps
    report = json.loads((out / "results.json").read_text())
    assert sorted(report) == METHODS and all(r["images"] == 3 for r in report.values())
    assert (out / "success_vs_queries.png").stat().st_size > 0 and "| zoo |" in (out / "table.md").read_text()
    assert len(list((out / "attackers").iterdir())) == 4
    assert all(0 <= report[m]["diagnostics"]["topq_overlap"] <= 1 for m in METHODS if m not in ("zoo", "nes"))
    assert main(["attack", "run", *args, "--set", "attack.targeted=true"]) == 0  # new attacks, same zoo and attackers
    script = Path(__file__).parents[2] / "scripts" / "attack_heldout_mse.py"
    lines = subprocess.run([sys.executable, str(script), str(out)], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    assert len(lines) == 4 and all("MSE on 500 images" in line for line in lines)  # 500 whatever attack_images is
    assert len(list((out / "attacks").iterdir())) == 12 and len(list((out / "attackers").iterdir())) == 4
    assert main(["attack", "run", *args, "--set", "methods=[bogus]"]) == 2
    assert "unknown" in capsys.readouterr().err
    if not torch.cuda.is_available():  # an unusable device is a config error that says what to use instead
        assert main(["attack", "run", *args, "--set", "device=cuda"]) == 2
        assert "device: 'cuda'" in capsys.readouterr().err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cli_attack_runs_on_cuda(mnist_root, tmp_path):
    args = ["--out", str(tmp_path / "run"), "--quiet", "--set", "device=cuda"]
    for setting in [f"data.root={mnist_root}", *TINY]:
        args += ["--set", setting]
    torch.cuda.reset_peak_memory_stats()
    assert main(["attack", "run", *args]) == 0
    assert torch.cuda.max_memory_allocated() > 0  # it ran on the GPU
    report = json.loads((tmp_path / "run" / "results.json").read_text())
    assert sorted(report) == METHODS and all(r["images"] == 3 for r in report.values())
