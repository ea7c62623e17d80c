"""The settings the published protocols need: Reptile's training shots and inner Adam, MAML's gradient clip and
strided Omniglot network, and the shipped presets running end to end (at toy scale, on the glyphs)."""
import json
from pathlib import Path

import pytest
import torch

import lazymeta.learner
from lazymeta.cli import main
from lazymeta.fewshot.config import FewShotConfig
from lazymeta.fewshot.train import build_learner, load_run, train
from lazymeta.infra.config import update
from lazymeta.learner import MetaLearner, Task, classification_losses
from lazymeta.models import Conv4
from lazymeta.student import AdamStudent, Student

PRESETS = sorted((Path(__file__).parents[2] / "configs" / "fewshot").glob("*.yaml"))
TOY = ["--dataset", "glyphs", "--iterations", "2", "--set", "model.hidden=4", "--set", "eval_episodes=2",
       "--set", "optim.meta_batch=2", "--set", "episodes.queries=2", "--set", "data.image_size=28", "--quiet"]


def toy(root, **overrides):
    values = {"data": {"root": str(root)}, "model": {"hidden": 4}, "iterations": 2, "eval_episodes": 2}
    for key, value in overrides.items():
        values.setdefault(key, {}).update(value) if isinstance(value, dict) else values.__setitem__(key, value)
    return update(FewShotConfig(), values, "test")


def test_reptile_meta_trains_on_train_shots_and_evaluates_on_shots(glyphs_root, tmp_path, monkeypatch):
    seen = []
    real = lazymeta.learner.MetaLearner.meta_step

    def spy(self, tasks):
        seen.extend(t.train_x.shape[0] for t in tasks)
        return real(self, tasks)

    monkeypatch.setattr(lazymeta.learner.MetaLearner, "meta_step", spy)
    config = toy(glyphs_root, episodes={"ways": 3, "shots": 1, "train_shots": 4}, algorithm={"name": "reptile"})
    train(config, tmp_path / "run", progress=False)
    assert seen and set(seen) == {3 * 4}
    assert main(["eval", str(tmp_path / "run"), "--episodes", "2", "--json", "--quiet"]) == 0


def test_the_inner_adam_student_trains_and_adapts(glyphs_root, tmp_path):
    config = toy(glyphs_root, algorithm={"name": "reptile", "inner": "adam", "inner_lr": 0.001,
                                         "inner_betas": [0.0, 0.999], "test_steps": 3})
    train(config, tmp_path / "run", progress=False)
    learner, _ = load_run(tmp_path / "run")
    assert learner.student == AdamStudent(10, 0.001, 1, (0.0, 0.999))
    x, y = torch.randn(3, 1, 28, 28), torch.arange(3)
    theta = {n: p.detach() for n, p in learner.model.named_parameters()}
    expected = AdamStudent(3, 0.001, 1, (0.0, 0.999)).run(
        theta, classification_losses(learner.forward, 3, x, y, x, y)[0])[-1]
    task = learner.adapt(x, y)  # test time adapts with the same rule, for test_steps
    for name in theta:
        torch.testing.assert_close(task.params[name], expected[name])


def test_second_order_maml_refuses_a_first_order_inner_rule(glyphs_root):
    from lazymeta.fewshot.config import validate
    from lazymeta.infra.errors import ConfigError

    with pytest.raises(ConfigError, match="algorithm.inner=adam is first-order: second-order maml needs inner: sgd"):
        validate(toy(glyphs_root, algorithm={"name": "maml", "inner": "adam"}))


def test_clip_clamps_every_element_of_the_meta_gradient():
    torch.manual_seed(0)
    model = Conv4(1, 28, 3, 4).double()
    before = [p.detach().clone() for p in model.parameters()]
    learner = MetaLearner(model, "fomaml", Student(2, 0.5), meta_optimizer=torch.optim.SGD(model.parameters(), lr=1.0),
                          clip=1e-4)
    x, y = torch.randn(6, 1, 28, 28, dtype=torch.float64) * 5, torch.arange(3).repeat(2)
    learner.meta_step([Task(x, y, x, y)])
    steps = torch.cat([(b - p.detach()).reshape(-1) for b, p in zip(before, model.parameters())])
    assert steps.abs().max() == pytest.approx(1e-4, rel=1e-9) and (steps.abs() <= 1e-4 * (1 + 1e-9)).all()


def test_strided_conv4_is_mamls_omniglot_network():
    model = Conv4(1, 28, 5, 8, pool="stride")
    assert [type(m).__name__ for m in model.features[0]] == ["Conv2d", "BatchNorm2d", "ReLU"]
    assert model.features[0][0].stride == (2, 2) and model.head.in_features == 8
    assert model(torch.randn(4, 1, 28, 28)).shape == (4, 5)
    with pytest.raises(ValueError, match="pool must be one of"):
        Conv4(pool="avg")


def test_a_lazy_run_reports_where_in_its_grid_the_teacher_sat(glyphs_root, tmp_path):
    config = toy(glyphs_root, algorithm={"name": "lazy-maml", "steps": 3}, iterations=3,
                 checkpoint_every=1)
    train(config, tmp_path / "run", progress=False)
    learner, _ = load_run(tmp_path / "run")
    assert learner.gamma_counts.sum() == 3 * 4  # every task of every meta-batch
    assert main(["eval", str(tmp_path / "run"), "--episodes", "2", "--quiet"]) == 0
    report = json.loads((tmp_path / "run" / "eval-test-2ep.json").read_text())
    edges = report["leap_edges"]
    assert edges["reading"] == "leap-rate" and sum(edges["fractions"].values()) == pytest.approx(1.0)
    assert edges["low"] == edges["fractions"]["0.75"] and edges["high"] == edges["fractions"]["0.95"]


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_every_preset_runs_at_toy_scale(preset, glyphs_root, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--config", str(preset), "--data-root", str(glyphs_root), "--out", str(out), *TOY]) == 0
    assert "accuracy (transductive BN)" in capsys.readouterr().out
    learner, config = load_run(out)
    assert config.model.pool == ("stride" if "omniglot" in preset.stem else "max")
    assert isinstance(build_learner(config, learner.transform, torch.device("cpu")).student, Student)
