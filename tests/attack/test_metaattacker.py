"""Meta-training of the meta-attacker on real MNIST gradient tasks, through lazymeta.algorithms."""
import pytest
import torch

from lazymeta import algorithms
from lazymeta.attack.gradients import input_gradients, margin_loss
from lazymeta.attack.config import MetaTrainConfig
from lazymeta.attack.metaattacker import meta_train, prediction_mse
from lazymeta.models.attack import meta_attacker
from lazymeta.student import Student
from lazymeta.teacher import LazyTeacher

pytestmark = pytest.mark.data


def test_gradient_maps_are_the_margin_gradient_divided_by_their_std(tiny_zoo, target_test_set):
    x, y = (t[:3] for t in target_test_set)
    maps = input_gradients(tiny_zoo["net4"], x, y)
    torch.testing.assert_close(maps.flatten(1).std(1), torch.ones(3))
    xr = x.clone().requires_grad_(True)
    (raw,) = torch.autograd.grad(margin_loss(torch.log_softmax(tiny_zoo["net4"](xr), 1), y).sum(), xr)
    cosine = torch.nn.functional.cosine_similarity(maps.flatten(1), raw.flatten(1))
    torch.testing.assert_close(cosine, torch.ones(3))


@pytest.mark.parametrize("algorithm, inner", [("reptile", "adam"), ("lazy-reptile", "sgd")])
def test_meta_training_reduces_held_out_gradient_mse(tasks, algorithm, inner):
    train, held_out = tasks
    torch.manual_seed(0)
    model = meta_attacker("mnist", width_divisor=4)
    before = prediction_mse(model, held_out)
    settings = MetaTrainConfig(algorithm=algorithm, inner=inner, steps=3, inner_lr=0.01 if inner == "adam" else 0.3,
                                 iterations=8, support=8, query=8)
    meta_train(model, train, settings, torch.Generator().manual_seed(0))
    after = prediction_mse(model, held_out)
    assert after < 0.9 * before, (before, after)


@pytest.mark.parametrize("name", ["lazy-reptile", "lazy-maml"])
def test_lazy_path_runs_through_the_algorithms_and_the_teacher(tasks, name, monkeypatch):
    calls = {"adapt": 0, "meta_gradient": 0, "choose": 0}

    def spy(owner, attribute, key):
        original = getattr(owner, attribute)

        def wrapped(*args, **kwargs):
            calls[key] += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, attribute, wrapped)

    spy(algorithms.Algorithm, "adapt", "adapt")
    spy(algorithms.Algorithm, "meta_gradient", "meta_gradient")
    spy(LazyTeacher, "choose", "choose")
    settings = MetaTrainConfig(algorithm=name, inner="sgd", steps=2, inner_lr=0.1, iterations=2, support=4, query=4,
                                 meta_optimizer="adam" if name == "lazy-maml" else "sgd",
                                 meta_lr=1e-3 if name == "lazy-maml" else 1.0)
    history = meta_train(meta_attacker("mnist", 8), tasks[0], settings, torch.Generator().manual_seed(0))
    assert calls == {"adapt": 4, "meta_gradient": 4, "choose": 4}
    assert all(0.75 <= h["gamma"] <= 0.95 and torch.isfinite(torch.tensor(h["query_mse"])) for h in history)


def test_lazy_and_plain_at_the_same_horizon_differ_only_in_the_leap(tasks):
    """With the leap pinned at γ = 1 (φ = the student's last point) lazy-reptile is plain reptile, bit for
    bit: same initialisation, inner rule, lrs, k and support/query draws. At the default grid it is not."""
    shared = dict(inner="adam", steps=3, inner_lr=0.01, meta_lr=0.01, iterations=2, support=4, query=4)
    trained = {}
    for name, algorithm, gammas in (("plain", "reptile", None), ("pinned", "lazy-reptile", (1.0,)),
                                    ("lazy", "lazy-reptile", None)):
        torch.manual_seed(0)
        model = meta_attacker("mnist", 8)
        teacher = LazyTeacher(gammas=gammas) if gammas else LazyTeacher()
        meta_train(model, tasks[0], MetaTrainConfig(algorithm=algorithm, **shared), torch.Generator().manual_seed(0),
                   teacher=teacher)
        trained[name] = torch.cat([p.detach().flatten() for p in model.parameters()])
    torch.testing.assert_close(trained["pinned"], trained["plain"], rtol=0, atol=1e-7)
    assert not torch.allclose(trained["lazy"], trained["plain"])
