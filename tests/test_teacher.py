"""The teacher's grid and its choice against a brute-force search over the same candidates."""
import itertools

import pytest
import torch

from lazymeta.teacher import LazyTeacher, simplex_grid


def test_simplex_grid_is_complete_and_on_the_simplex():
    grid = simplex_grid(3, 0.05)
    assert grid.shape == (231, 3)  # C(20 + 2, 2)
    assert torch.allclose(grid.sum(1), torch.ones(231, dtype=grid.dtype)) and (grid >= 0).all()
    assert len({tuple(r) for r in grid.tolist()}) == 231
    with pytest.raises(ValueError, match="divide"):
        simplex_grid(2, 0.3)


def written_out_leap(theta, region, gamma, reading):
    """θ + γ(R - θ) (γ the leap rate toward the student) or γθ + (1 - γ)R (eq. 4 as printed)."""
    if reading == "leap-rate":
        return {n: theta[n] + gamma * (region[n] - theta[n]) for n in theta}
    return {n: gamma * theta[n] + (1 - gamma) * region[n] for n in theta}


def brute_force(theta, checkpoints, metric, teacher):
    best = None
    alphas = simplex_grid(len(checkpoints), teacher.alpha_step).tolist() if len(checkpoints) > 1 else [[1.0]]
    for gamma, alpha in itertools.product(teacher.gammas, alphas):
        region = {n: sum(a * c[n] for a, c in zip(alpha, checkpoints)) for n in theta}
        p = written_out_leap(theta, region, gamma, teacher.reading)
        loss, acc = (float(v) for v in metric(p))
        key = (loss,) if teacher.select == "loss" else (-acc, loss)
        if best is None or key < best[0]:
            best = (key, gamma, alpha)
    return best[1], best[2]


def make_case(b, seed):
    g = torch.Generator().manual_seed(seed)
    theta = {"w": torch.randn(4, generator=g, dtype=torch.float64)}
    checkpoints = [{"w": torch.randn(4, generator=g, dtype=torch.float64)} for _ in range(b)]
    target = torch.randn(4, generator=g, dtype=torch.float64)

    def metric(p):
        loss = ((p["w"] - target) ** 2).sum()
        # a coarse "accuracy" with many ties, so that ties must be broken by the loss
        return loss, (p["w"] * target > 0).double().mean()

    return theta, checkpoints, metric


@pytest.mark.parametrize("reading", ["leap-rate", "literal"])
@pytest.mark.parametrize("b", [1, 3])
@pytest.mark.parametrize("select", ["loss", "accuracy"])
def test_choice_is_the_true_best_candidate(b, select, reading):
    teacher = LazyTeacher(select=select, reading=reading, chunk=50)
    for seed in range(5):
        theta, checkpoints, metric = make_case(b, seed)
        leap = teacher.choose(theta, checkpoints, metric)
        gamma, alpha = brute_force(theta, checkpoints, metric, teacher)
        assert float(leap.gamma) == pytest.approx(gamma)
        torch.testing.assert_close(leap.alpha, torch.tensor(alpha, dtype=torch.float64))
        leapt = teacher.leap(theta, checkpoints, leap)
        torch.testing.assert_close(metric(leapt)[0], leap.loss)


@pytest.mark.parametrize("reading, theta_weight", [("leap-rate", 0.15), ("literal", 0.85)])
def test_constructed_minimum_is_found_exactly(reading, theta_weight):
    # the target is exactly the leap with γ = 0.85, α = (0.2, 0.3, 0.5): zero loss there only. The leap rate
    # moves 85 % of the way toward the student; the literal reading keeps 85 % of θ.
    theta = {"w": torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)}
    checkpoints = [{"w": torch.eye(3, dtype=torch.float64)[i] * (i + 2)} for i in range(3)]
    alpha = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    target = theta_weight * theta["w"] + (1 - theta_weight) * sum(a * c["w"] for a, c in zip(alpha, checkpoints))
    teacher = LazyTeacher(reading=reading)
    leap = teacher.choose(theta, checkpoints, lambda p: (((p["w"] - target) ** 2).sum(), torch.tensor(1.0)))
    assert float(leap.gamma) == pytest.approx(0.85)
    torch.testing.assert_close(leap.alpha, alpha)
    assert float(leap.loss) == pytest.approx(0.0, abs=1e-20)


def test_bfloat16_scoring_changes_only_the_scores_not_a_clear_choice():
    # matmul runs in bfloat16 under autocast: the minimum (γ = 0.85) is far clearer than the rounding
    g = torch.Generator().manual_seed(0)
    x, theta, phi = (torch.randn(64, 16, generator=g) for _ in range(3))
    theta, phi = {"w": theta[:16]}, {"w": phi[:16]}
    target = x @ (0.15 * theta["w"] + 0.85 * phi["w"])  # the leap of rate γ = 0.85 toward φ

    def metric(p):
        return ((x @ p["w"] - target) ** 2).mean(), torch.tensor(1.0)

    exact = LazyTeacher().choose(theta, [phi], metric)
    fast = LazyTeacher(score_precision="bfloat16").choose(theta, [phi], metric)
    assert float(exact.gamma) == float(fast.gamma) == pytest.approx(0.85)
    assert float(exact.loss) < 1e-10 < float(fast.loss)  # the candidates really were scored in bfloat16
    leapt = LazyTeacher().leap(theta, [phi], fast)  # the leap itself stays in full precision
    assert leapt["w"].dtype == torch.float32 and float(metric(leapt)[0]) < 1e-10


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="score_precision"):
        LazyTeacher(score_precision="float16")
    with pytest.raises(ValueError, match="select"):
        LazyTeacher(select="acc")
    with pytest.raises(ValueError, match="gammas"):
        LazyTeacher(gammas=(1.5,))
    with pytest.raises(ValueError, match="reading must be one of"):
        LazyTeacher(reading="lookahead")


def test_the_paper_rule_is_the_default_choice():
    """Selection by D_val accuracy, ties broken by loss (the paper's sec. 4.2), γ as the leap rate."""
    assert LazyTeacher().select == "accuracy" and LazyTeacher().reading == "leap-rate"


@pytest.mark.parametrize("chunk", [1, 7])
def test_every_candidate_is_the_leap_of_each_parameter(chunk):
    """The candidates are built as flat vectors: each parameter of each must be its own leap, shapes kept."""
    g = torch.Generator().manual_seed(3)
    shapes = {"conv": (2, 3, 3, 3), "bias": (2,), "head": (4, 5)}
    theta = {n: torch.randn(s, generator=g, dtype=torch.float64) for n, s in shapes.items()}
    checkpoints = [{n: torch.randn(s, generator=g, dtype=torch.float64) for n, s in shapes.items()} for _ in range(2)]
    teacher = LazyTeacher(alpha_step=0.25, chunk=chunk)
    seen = []

    def metric(p):
        seen.append({n: v.clone() for n, v in p.items()} if chunk == 1 else None)
        return sum(v.sum() for v in p.values()), torch.zeros((), dtype=torch.float64)

    teacher.choose(theta, checkpoints, metric)
    gammas, alphas = teacher.candidates(2)
    if chunk == 1:
        assert len(seen) == len(gammas)
        for candidate, gamma, alpha in zip(seen, gammas, alphas):
            for n, p in theta.items():
                hull = alpha[0] * checkpoints[0][n] + alpha[1] * checkpoints[1][n]
                torch.testing.assert_close(candidate[n], (1 - gamma) * p + gamma * hull, rtol=1e-12, atol=1e-12)
    leap = teacher.choose(theta, checkpoints, metric)  # the lowest sum: one candidate, the same either way
    totals = [sum(((1 - gm) * p + gm * (a[0] * checkpoints[0][n] + a[1] * checkpoints[1][n])).sum()
                  for n, p in theta.items()) for gm, a in zip(gammas, alphas)]
    best = min(range(len(totals)), key=lambda i: float(totals[i]))
    assert float(leap.gamma) == pytest.approx(float(gammas[best]))
    torch.testing.assert_close(leap.alpha, alphas[best])
