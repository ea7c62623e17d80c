"""Meta-gradients of every algorithm against finite differences and their closed forms (float64)."""
import pytest
import torch
from torch import nn

from lazymeta import params as P
from lazymeta.algorithms import ALGORITHMS, get_algorithm
from lazymeta.learner import MetaLearner, Task, classification_losses
from lazymeta.student import Student
from lazymeta.teacher import LazyTeacher


class Tiny(nn.Module):
    def __init__(self, ways=3):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 5), nn.Tanh())
        self.head = nn.Linear(5, ways)

    def forward(self, x):
        return self.head(self.body(x))


def tiny_task(seed=0, ways=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3 * ways, 4, generator=g, dtype=torch.float64)
    y = torch.arange(ways).repeat(3)
    return x[:2 * ways], y[:2 * ways], x[2 * ways:], y[2 * ways:]


def setup(seed=0):
    torch.manual_seed(seed)
    model = Tiny().double()
    forward = P.functional(model)
    train_loss, val_metric = classification_losses(forward, 3, *tiny_task(seed))
    return model, train_loss, val_metric


def finite_difference(fn, theta, eps=1e-6):
    """Central differences of the scalar fn(θ) with respect to every coordinate of θ."""
    flat = P.flat(theta).detach()
    grad = torch.zeros_like(flat)
    for i in range(len(flat)):
        for sign in (1, -1):
            shifted = flat.clone()
            shifted[i] += sign * eps
            grad[i] += sign * float(fn(P.unflat(shifted, theta))) / (2 * eps)
    return grad


def meta_grad(name, model, train_loss, val_metric, student, teacher=None):
    alg = get_algorithm(name)
    theta = P.params_of(model)
    adapted = alg.adapt(theta, student, teacher, train_loss, val_metric)
    grads, _ = alg.meta_gradient(theta, adapted, val_metric)
    return torch.cat([g.reshape(-1) for g in grads]), adapted


def test_maml_meta_gradient_matches_finite_differences_and_differs_from_first_order():
    model, train_loss, val_metric = setup()
    student = Student(steps=3, lr=0.5)
    second, _ = meta_grad("maml", model, train_loss, val_metric, student)

    def outer(theta):
        return val_metric(student.run(theta, train_loss)[-1])[0]

    fd = finite_difference(outer, P.params_of(model))
    torch.testing.assert_close(second, fd, rtol=1e-6, atol=1e-8)
    first, _ = meta_grad("fomaml", model, train_loss, val_metric, student)
    assert (first - second).norm() > 1e-3 * second.norm()


def test_fomaml_is_the_validation_gradient_at_the_adapted_weights():
    model, train_loss, val_metric = setup(1)
    student = Student(steps=4, lr=0.3)
    first, _ = meta_grad("fomaml", model, train_loss, val_metric, student)
    phi = {n: p.requires_grad_(True) for n, p in student.run(P.params_of(model), train_loss)[-1].items()}
    expected = torch.autograd.grad(val_metric(phi)[0], list(phi.values()))
    torch.testing.assert_close(first, torch.cat([g.reshape(-1) for g in expected]))


@pytest.mark.parametrize("reading", ["leap-rate", "literal"])
def test_lazy_maml_meta_gradient_is_the_theta_weight_times_the_validation_gradient_at_the_leap(reading):
    """(1 - γ̂) ∇L_val(leap) with γ the leap rate; γ̂ ∇L_val(leap) in the literal reading."""
    model, train_loss, val_metric = setup(2)
    student = Student(steps=6, lr=0.3, keep_last=2)
    teacher = LazyTeacher(alpha_step=0.25, reading=reading)
    grad, adapted = meta_grad("lazy-maml", model, train_loss, val_metric, student, teacher)
    leap = {n: p.detach().requires_grad_(True) for n, p in adapted.params.items()}
    at_leap = torch.autograd.grad(val_metric(leap)[0], list(leap.values()))
    gamma = adapted.leap.gamma
    weight = 1 - gamma if reading == "leap-rate" else gamma
    torch.testing.assert_close(grad, weight * torch.cat([g.reshape(-1) for g in at_leap]))
    # and against finite differences of θ -> L_val(θ + γ(Σ α_j φ_j - θ)) with the checkpoints held fixed,
    # the leap written out here
    theta = P.params_of(model)
    checkpoints = student.run(theta, train_loss)
    alpha = adapted.leap.alpha

    def leap_of(t):
        region = {n: sum(a * c[n] for a, c in zip(alpha, checkpoints)) for n in t}
        return {n: weight * t[n] + (1 - weight) * region[n] for n in t}

    fd = finite_difference(lambda t: val_metric(leap_of(t))[0], theta)
    torch.testing.assert_close(grad, fd, rtol=1e-6, atol=1e-8)


def test_reptile_rules_move_theta_by_beta_times_mean_difference():
    for name in ("reptile", "lazy-reptile"):
        torch.manual_seed(3)
        model = Tiny().double()
        beta = 0.7
        student = Student(steps=5, lr=0.2, keep_last=1)
        learner = MetaLearner(model, name, student, meta_optimizer=torch.optim.SGD(model.parameters(), lr=beta))
        tasks = [Task(*tiny_task(s)) for s in (10, 11)]
        theta = P.clone(P.params_of(model))
        alg = get_algorithm(name)
        targets = []
        for t in tasks:
            train_loss, val_metric = classification_losses(learner.forward, 3, *t)
            targets.append(P.detach(alg.adapt(theta, student, learner.teacher, train_loss, val_metric).params))
        learner.meta_step(tasks)
        for n, p in model.named_parameters():
            expected = theta[n] - beta * sum(theta[n] - phi[n] for phi in targets) / len(targets)
            torch.testing.assert_close(p.detach(), expected)


def test_lazy_reptile_target_is_the_leap_not_the_student():
    model, train_loss, val_metric = setup(4)
    student = Student(steps=5, lr=0.3)
    theta = P.params_of(model)
    adapted = get_algorithm("lazy-reptile").adapt(theta, student, LazyTeacher(), train_loss, val_metric)
    phi_k = student.run(theta, train_loss)[-1]
    g = adapted.leap.gamma  # the leap rate: θ moves the fraction γ of the way to the student
    for n in theta:
        torch.testing.assert_close(adapted.params[n], theta[n] + g * (phi_k[n] - theta[n]))


def test_every_named_algorithm_is_a_distinct_composition():
    combinations = {(a.tie, a.outer, a.inner) for a in ALGORITHMS.values()}
    assert len(combinations) == len(ALGORITHMS)
    assert {"maml", "fomaml", "reptile", "lazy-maml", "lazy-reptile"} <= set(ALGORITHMS)
