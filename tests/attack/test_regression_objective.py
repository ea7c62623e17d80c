"""The meta-attacker's objective inside the core's MetaLearner: batched tasks give what one task at a time
gives, and meta_train is the learner's meta-steps on fresh support/query draws (random maps: no data needed)."""
import pytest
import torch

from lazymeta.algorithms import ALGORITHMS
from lazymeta.attack.config import AttackConfig, MetaTrainConfig, validate
from lazymeta.attack.metaattacker import GradientRegression, GradientTask, attacker_forward, meta_train
from lazymeta.infra.errors import ConfigError
from lazymeta.learner import MetaLearner, Task
from lazymeta.models.attack import meta_attacker
from lazymeta.params import functional, params_of
from lazymeta.student import AdamStudent, Student


def gradient_tasks(count=3, images=20, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [GradientTask(torch.rand(images, 1, 28, 28, generator=g), torch.randn(images, 1, 28, 28, generator=g))
            for _ in range(count)]


def test_the_objective_is_the_per_image_mse_and_batches_to_the_same_numbers():
    torch.manual_seed(0)
    model = meta_attacker("mnist", 8)
    forward, theta = functional(model), params_of(model)
    tasks = [t.split(4, 5, torch.Generator().manual_seed(i)) for i, t in enumerate(gradient_tasks())]
    one = [GradientRegression().losses(forward, t) for t in tasks]
    expected = (attacker_forward(model)(theta, tasks[0].val_x) - tasks[0].val_y).pow(2).mean()
    torch.testing.assert_close(one[0].metric(theta)[0], expected)
    torch.testing.assert_close(one[0].metric(theta)[1], -expected)
    stacked = Task(*(torch.stack(parts) for parts in zip(*tasks)))
    batched = GradientRegression().batched_losses(forward, stacked)
    per_task = {n: p.expand(len(tasks), *p.shape) for n, p in theta.items()}
    torch.testing.assert_close(batched.train(per_task), sum(losses.train(theta) for losses in one))
    torch.testing.assert_close(batched.metric(per_task)[0], torch.stack([losses.metric(theta)[0] for losses in one]))
    assert one[0].entropy is None and batched.entropy is None  # no TAML term for a regression


@pytest.mark.parametrize("algorithm, student", [("reptile", AdamStudent(3, 0.01)), ("lazy-reptile", Student(3, 0.1)),
                                                ("lazy-maml", Student(2, 0.1))])
def test_batched_meta_steps_equal_one_task_at_a_time(algorithm, student):
    tasks = [t.split(4, 4, torch.Generator().manual_seed(i)) for i, t in enumerate(gradient_tasks())]
    weights = {}
    for batch_tasks in (False, True):
        torch.manual_seed(0)
        model = meta_attacker("mnist", 8)
        learner = MetaLearner(model, algorithm, student, meta_optimizer=torch.optim.SGD(model.parameters(), lr=0.5),
                              batch_tasks=batch_tasks, objective=GradientRegression())
        stats = learner.meta_step(tasks)
        weights[batch_tasks] = (torch.cat([p.detach().flatten() for p in model.parameters()]), stats)
    torch.testing.assert_close(weights[True][0], weights[False][0], rtol=1e-4, atol=1e-6)
    assert weights[True][1]["loss"] == pytest.approx(weights[False][1]["loss"], rel=1e-5)


def test_meta_train_is_the_learners_meta_steps_on_fresh_draws():
    tasks = gradient_tasks()
    settings = MetaTrainConfig(algorithm="lazy-reptile", inner="sgd", steps=2, inner_lr=0.1, iterations=3, support=4,
                               query=4, meta_lr=0.5)
    torch.manual_seed(0)
    model = meta_attacker("mnist", 8)
    history = meta_train(model, tasks, settings, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    twin = meta_attacker("mnist", 8)
    learner = MetaLearner(twin, "lazy-reptile", Student(2, 0.1),
                          meta_optimizer=torch.optim.SGD(twin.parameters(), lr=0.5), objective=GradientRegression())
    generator, expected = torch.Generator().manual_seed(0), []
    for _ in range(3):
        expected.append(learner.meta_step([t.split(4, 4, generator) for t in tasks]))
    assert [h["query_mse"] for h in history] == [e["loss"] for e in expected]
    assert [h["gamma"] for h in history] == [e["gamma"] for e in expected]
    for p, q in zip(model.parameters(), twin.parameters()):
        assert torch.equal(p, q)


@pytest.mark.parametrize("algorithm", ["taml", "lazy-taml"])
def test_an_attack_config_refuses_the_entropy_algorithms_by_name(algorithm):
    config = AttackConfig(lazy=MetaTrainConfig(algorithm=algorithm))
    with pytest.raises(ConfigError, match=f"lazy.algorithm '{algorithm}' adds an entropy term"):
        validate(config)
    validate(AttackConfig(lazy=MetaTrainConfig(algorithm="lazy-minibatchprox", inner="sgd")))  # a comparator is fine
    with pytest.raises(ConfigError, match="runs its own inner rule, not Adam: set lazy.inner=sgd"):
        validate(AttackConfig(lazy=MetaTrainConfig(algorithm="lazy-minibatchprox", inner="adam")))


@pytest.mark.parametrize("algorithm", [a for a in ALGORITHMS if "taml" not in a])
def test_every_other_algorithm_meta_trains_a_meta_attacker(algorithm):
    torch.manual_seed(0)
    model = meta_attacker("mnist", 8)
    before = [p.detach().clone() for p in model.parameters()]
    settings = MetaTrainConfig(algorithm=algorithm, inner="sgd", steps=2, inner_lr=0.1, iterations=1, support=4,
                               query=4, meta_optimizer="adam", meta_lr=1e-3)
    (stats,) = meta_train(model, gradient_tasks(2), validate(AttackConfig(meta=settings)).meta,
                          torch.Generator().manual_seed(0))
    assert torch.isfinite(torch.tensor(stats["query_mse"]))
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
