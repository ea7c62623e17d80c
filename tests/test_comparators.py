"""The comparators (iMAML, Meta-SGD, Meta-MinibatchProx, TAML, Meta-Curvature and their lazy versions):
meta-gradients against analytic forms and finite differences (float64)."""
import pytest
import torch

from lazymeta import params as P
from lazymeta.algorithms import ALGORITHMS, conjugate_gradient, get_algorithm
from lazymeta.learner import Classification, MetaLearner, Task
from lazymeta.models import Conv4, build_model
from lazymeta.student import CurvatureStudent, LearnedRateStudent, ProximalStudent, Student
from lazymeta.teacher import LazyTeacher
from test_algorithms import Tiny, finite_difference, tiny_task


def tiny_losses(seed=0):
    torch.manual_seed(seed)
    model = Tiny().double()
    return model, Classification(3).losses(P.functional(model), Task(*tiny_task(seed)))


def flat_grads(grads):
    return torch.cat([g.reshape(-1) for g in grads])


def quadratic_problem(n=6, seed=0):
    """L_tr(φ) = ½(φ - a)ᵀA(φ - a), L_val(φ) = ½||φ - c||²: the proximal solution is exact,
    φ* = (A + λI)⁻¹(Aa + λθ), and the meta-gradient is (I + A/λ)⁻¹(φ* - c)."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(n, n, generator=g, dtype=torch.float64)
    a_mat = q @ q.T / n + 0.1 * torch.eye(n, dtype=torch.float64)
    a, c = torch.randn(n, generator=g, dtype=torch.float64), torch.randn(n, generator=g, dtype=torch.float64)

    def train_loss(p):
        d = p["w"] - a
        return 0.5 * d @ a_mat @ d

    def val_metric(p):
        loss = 0.5 * (p["w"] - c).pow(2).sum()
        return loss, -loss

    return a_mat, a, c, train_loss, val_metric


def test_conjugate_gradient_solves_a_positive_definite_system_in_n_steps():
    a_mat, b, _, _, _ = quadratic_problem(5, seed=1)
    x = conjugate_gradient(lambda v: a_mat @ v, b, steps=5)
    torch.testing.assert_close(x, torch.linalg.solve(a_mat, b))


def test_imaml_cg_meta_gradient_equals_the_analytic_implicit_gradient():
    n, lam = 6, 2.0
    a_mat, a, c, train_loss, val_metric = quadratic_problem(n)
    theta = {"w": torch.randn(n, dtype=torch.float64, requires_grad=True)}
    student = ProximalStudent(steps=3000, lr=0.2, prox_lambda=lam)  # converges: the inner solution is exact
    alg = get_algorithm("imaml").configured(cg_steps=n, cg_damping=0.0)
    adapted = alg.adapt(theta, student, None, train_loss, val_metric)
    (grad,), _ = alg.meta_gradient(theta, adapted, val_metric)
    eye = torch.eye(n, dtype=torch.float64)
    phi_star = torch.linalg.solve(a_mat + lam * eye, a_mat @ a + lam * theta["w"].detach())
    torch.testing.assert_close(adapted.params["w"].detach(), phi_star)
    torch.testing.assert_close(grad, torch.linalg.solve(eye + a_mat / lam, phi_star - c))


def test_imaml_on_conv4_approaches_the_finite_difference_meta_gradient_as_cg_steps_grow():
    """Conv4 with batch norm, float64. Its convolutions are scale-invariant under batch norm (curvature
    ∝ 1/‖w‖²), so θ's convolution weights are taken 10x their initial size, where the proximal inner loop
    converges to machine precision; the finite differences then differentiate the exact proximal solution.
    ReLU and max-pooling make the loss piecewise smooth: the perturbation (1e-6) stays on θ's piece, which the
    residual check at each perturbed point confirms (a larger one lands on a kink, where no solution is exact)."""
    torch.manual_seed(0)
    ways, lam = 3, 5.0
    model = Conv4(1, 16, ways, hidden=2).double()
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(4 * ways, 1, 16, 16, generator=g, dtype=torch.float64), torch.arange(ways).repeat(4)
    train_loss, val_metric, _ = Classification(ways).losses(P.functional(model), Task(x[:2 * ways], y[:2 * ways],
                                                                                      x[2 * ways:], y[2 * ways:]))
    theta = {n: (p.detach() * (10 if n.endswith(".0.weight") else 1)).requires_grad_(True)
             for n, p in P.params_of(model).items()}
    student = ProximalStudent(steps=1000, lr=0.1, prox_lambda=lam)

    def solution(start):
        phi = {n: p.requires_grad_(True) for n, p in student.run(start, train_loss)[-1].items()}
        grads = torch.autograd.grad(train_loss(phi), list(phi.values()))
        residual = torch.cat([(gr + lam * (p - start[n])).reshape(-1) for (n, p), gr in zip(phi.items(), grads)])
        assert residual.norm() < 1e-10  # the inner problem is solved exactly
        return phi

    v = {n: torch.randn(p.shape, generator=g, dtype=torch.float64) for n, p in theta.items()}
    eps = 1e-6
    fd = [float(val_metric(solution({n: p.detach() + sign * eps * v[n] for n, p in theta.items()}))[0])
          for sign in (1, -1)]
    directional = (fd[0] - fd[1]) / (2 * eps)
    errors = []
    for cg_steps in (1, 2, 5, 10):
        alg = get_algorithm("imaml").configured(cg_steps=cg_steps, cg_damping=0.0)
        grads, _ = alg.meta_gradient(theta, alg.adapt(theta, student, None, train_loss, val_metric), val_metric)
        errors.append(abs(float(sum((gr * v[n]).sum() for gr, n in zip(grads, theta))) - directional))
    assert errors == sorted(errors, reverse=True) and errors[0] > 1e-2 * abs(directional)
    assert errors[-1] < 1e-6 * abs(directional)


def _meta_params(student, theta, seed):
    """The student's meta-parameters moved off their initial values, so that every entry matters."""
    g = torch.Generator().manual_seed(seed)
    return {n: (m + 0.05 * torch.randn(m.shape, generator=g, dtype=m.dtype)).requires_grad_(True)
            for n, m in student.meta_parameters(theta).items()}


@pytest.mark.parametrize("name, student", [("meta-sgd", LearnedRateStudent(steps=2, lr=0.3)),
                                           ("meta-curvature", CurvatureStudent(steps=2, lr=0.3))])
def test_gradients_wrt_theta_and_the_students_meta_parameters_match_finite_differences(name, student):
    model, losses = tiny_losses(5)
    alg = get_algorithm(name)
    assert isinstance(alg.student(Student(2, 0.3)), type(student))
    theta = P.params_of(model)
    meta = _meta_params(student, theta, 6)
    adapted = alg.adapt(theta, student, None, losses.train, losses.metric, meta)
    grads, _ = alg.meta_gradient(theta, adapted, losses.metric, meta)
    every = {**theta, **meta}

    def outer(values):
        t = {n: values[n] for n in theta}
        return losses.metric(student.run(t, losses.train, meta={n: values[n] for n in meta})[-1])[0]

    fd = finite_difference(outer, every)
    torch.testing.assert_close(flat_grads(grads), fd, rtol=1e-6, atol=1e-8)
    assert flat_grads(grads[len(theta):]).norm() > 0  # the rates / factors do learn


def test_identity_curvature_and_uniform_rates_start_as_the_plain_student():
    model, losses = tiny_losses(7)
    theta = P.params_of(model)
    plain = Student(steps=3, lr=0.2).run(theta, losses.train)[-1]
    for student in (LearnedRateStudent(steps=3, lr=0.2), CurvatureStudent(steps=3, lr=0.2)):
        phi = student.run(theta, losses.train, meta=student.meta_parameters(theta))[-1]
        for n in theta:
            torch.testing.assert_close(phi[n], plain[n])


def test_curvature_factors_are_kronecker_factored_for_conv_weights():
    model = build_model("conv4", in_channels=1, image_size=28, ways=3, hidden=4)
    meta = CurvatureStudent().meta_parameters(P.params_of(model))
    conv = next(n for n, p in model.named_parameters() if p.dim() == 4)
    o, i, kh, kw = dict(model.named_parameters())[conv].shape
    assert [meta[f"curvature/{conv}/{a}"].shape for a in ("out", "in", "kernel")] == [(o, o), (i, i), (kh * kw,) * 2]


@pytest.mark.parametrize("reduction", [0.0, 0.5])
def test_taml_gradient_adds_the_entropy_terms_and_matches_finite_differences(reduction):
    model, losses = tiny_losses(8)
    student, weight = Student(steps=2, lr=0.4), 0.7
    taml = get_algorithm("taml").configured(entropy_weight=weight, reduction_weight=reduction)
    theta = P.params_of(model)
    adapted = taml.adapt(theta, student, None, losses.train, losses.metric)
    grads, _ = taml.meta_gradient(theta, adapted, losses.metric, entropy=losses.entropy)

    def outer(t):
        phi = student.run(t, losses.train)[-1]
        return (losses.metric(phi)[0] - weight * losses.entropy(t)
                + reduction * (losses.entropy(phi) - losses.entropy(t)))

    torch.testing.assert_close(flat_grads(grads), finite_difference(outer, theta), rtol=1e-6, atol=1e-8)
    maml = get_algorithm("maml")
    plain, _ = maml.meta_gradient(theta, maml.adapt(theta, student, None, losses.train, losses.metric), losses.metric)
    assert (flat_grads(grads) - flat_grads(plain)).norm() > 1e-3 * flat_grads(plain).norm()


def test_lazy_taml_is_the_leap_gradient_plus_the_entropy_gradient_at_theta():
    model, losses = tiny_losses(9)
    student, teacher = Student(steps=4, lr=0.3), LazyTeacher()
    alg = get_algorithm("lazy-taml")
    theta = P.params_of(model)
    adapted = alg.adapt(theta, student, teacher, losses.train, losses.metric)
    grads, _ = alg.meta_gradient(theta, adapted, losses.metric, entropy=losses.entropy)
    gamma, phi_k = adapted.leap.gamma, student.run(theta, losses.train)[-1]

    def outer(t):
        leap = {n: t[n] + gamma * (phi_k[n] - t[n]) for n in t}
        return losses.metric(leap)[0] - alg.options()["entropy_weight"] * losses.entropy(t)

    torch.testing.assert_close(flat_grads(grads), finite_difference(outer, theta), rtol=1e-6, atol=1e-8)


def test_the_proximal_step_pulls_toward_the_start_point():
    model, losses = tiny_losses(10)
    theta = P.params_of(model)
    lr, lam = 0.3, 2.0
    phi = ProximalStudent(steps=2, lr=lr, prox_lambda=lam).run(theta, losses.train)[-1]
    expected = P.detach(theta)
    for _ in range(2):
        expected = {n: p.requires_grad_(True) for n, p in expected.items()}
        grads = torch.autograd.grad(losses.train(expected), list(expected.values()))
        expected = {n: (p - lr * (g + lam * (p - theta[n]))).detach() for (n, p), g in zip(expected.items(), grads)}
    for n in theta:
        torch.testing.assert_close(phi[n], expected[n])


def test_minibatchprox_moves_theta_toward_the_mean_proximal_solution():
    torch.manual_seed(11)
    model, beta = Tiny().double(), 0.6
    student = Student(steps=5, lr=0.2)
    learner = MetaLearner(model, "minibatchprox", student, meta_optimizer=torch.optim.SGD(model.parameters(), lr=beta))
    assert isinstance(learner.student, ProximalStudent) and learner.student.prox_lambda == 2.0
    tasks = [Task(*tiny_task(s)) for s in (12, 13)]
    theta = P.clone(P.params_of(model))
    targets = [learner.student.run(theta, learner.objective.losses(learner.forward, t).train)[-1] for t in tasks]
    learner.meta_step(tasks)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), theta[n] - beta * sum(theta[n] - phi[n] for phi in targets) / 2)


def test_lazy_minibatchprox_leaps_toward_the_proximal_student():
    model, losses = tiny_losses(14)
    theta = P.params_of(model)
    alg = get_algorithm("lazy-minibatchprox")
    student = alg.student(Student(steps=5, lr=0.3))
    adapted = alg.adapt(theta, student, LazyTeacher(), losses.train, losses.metric)
    phi_k = student.run(theta, losses.train)[-1]
    for n in theta:
        torch.testing.assert_close(adapted.params[n], theta[n] + adapted.leap.gamma * (phi_k[n] - theta[n]))


@pytest.mark.parametrize("name", ["meta-sgd", "meta-curvature", "taml"])
def test_batched_tasks_give_the_sequential_update(name):
    updates = []
    for batch in (False, True):
        torch.manual_seed(15)
        model = Tiny().double()
        learner = MetaLearner(model, name, Student(2, 0.3), meta_optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                              batch_tasks=batch)
        learner.meta_step([Task(*tiny_task(s)) for s in (16, 17)])
        updates.append(P.flat(learner.meta_parameters()).detach())
    torch.testing.assert_close(updates[0], updates[1])


def test_the_students_meta_parameters_are_trained_saved_and_resumed():
    def fresh():
        torch.manual_seed(18)
        model = Tiny().double()
        return MetaLearner(model, "meta-sgd", Student(2, 0.3), meta_optimizer=torch.optim.Adam(model.parameters(), 0.01))

    tasks = [[Task(*tiny_task(s)) for s in (19 + 2 * i, 20 + 2 * i)] for i in range(3)]
    whole = fresh()
    start = P.flat(P.clone(whole.meta)).clone()
    for batch in tasks:
        whole.meta_step(batch)
    assert not torch.equal(P.flat(P.detach(whole.meta)), start)  # the rates moved
    cut = fresh()
    cut.meta_step(tasks[0])
    resumed = fresh()
    resumed.load_state_dict(cut.state_dict())  # θ, rates and the Adam moments of both
    for batch in tasks[1:]:
        resumed.meta_step(batch)
    assert torch.equal(P.flat(P.detach(resumed.meta_parameters())), P.flat(P.detach(whole.meta_parameters())))


def test_imaml_refuses_batched_tasks_and_runs_them_one_at_a_time():
    model = Tiny().double()
    with pytest.raises(ValueError, match="one at a time"):
        MetaLearner(model, "imaml", Student(2, 0.3), batch_tasks=True).meta_step([Task(*tiny_task(0))])


def test_every_algorithm_takes_a_finite_meta_step():
    for name in ALGORITHMS:
        torch.manual_seed(21)
        model = Tiny().double()
        learner = MetaLearner(model, name, Student(2, 0.3), LazyTeacher(alpha_step=0.5))
        stats = learner.meta_step([Task(*tiny_task(s)) for s in (22, 23)])
        assert torch.isfinite(torch.tensor(stats["loss"])), name
        assert torch.isfinite(P.flat(P.detach(learner.meta_parameters()))).all(), name
