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


def brute_force(theta, checkpoints, metric, teacher):
    best = None
    alphas = simplex_grid(len(checkpoints), teacher.alpha_step).tolist() if len(checkpoints) > 1 else [[1.0]]
    for gamma, alpha in itertools.product(teacher.gammas, alphas):
        p = {n: gamma * theta[n] + (1 - gamma) * sum(a * c[n] for a, c in zip(alpha, checkpoints)) for n in theta}
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


@pytest.mark.parametrize("b", [1, 3])
@pytest.mark.parametrize("select", ["loss", "accuracy"])
def test_choice_is_the_true_best_candidate(b, select):
    teacher = LazyTeacher(select=select, chunk=50)
    for seed in range(5):
        theta, checkpoints, metric = make_case(b, seed)
        leap = teacher.choose(theta, checkpoints, metric)
        gamma, alpha = brute_force(theta, checkpoints, metric, teacher)
        assert float(leap.gamma) == pytest.approx(gamma)
        torch.testing.assert_close(leap.alpha, torch.tensor(alpha, dtype=torch.float64))
        leapt = teacher.leap(theta, checkpoints, leap)
        torch.testing.assert_close(metric(leapt)[0], leap.loss)


def test_constructed_minimum_is_found_exactly():
    # the target is exactly the leap with γ = 0.85, α = (0.2, 0.3, 0.5): zero loss there only
    theta = {"w": torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)}
    checkpoints = [{"w": torch.eye(3, dtype=torch.float64)[i] * (i + 2)} for i in range(3)]
    alpha = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    target = 0.85 * theta["w"] + 0.15 * sum(a * c["w"] for a, c in zip(alpha, checkpoints))
    leap = LazyTeacher().choose(theta, checkpoints, lambda p: (((p["w"] - target) ** 2).sum(), torch.tensor(1.0)))
    assert float(leap.gamma) == pytest.approx(0.85)
    torch.testing.assert_close(leap.alpha, alpha)
    assert float(leap.loss) == pytest.approx(0.0, abs=1e-20)


def test_bfloat16_scoring_changes_only_the_scores_not_a_clear_choice():
    # matmul runs in bfloat16 under autocast: the minimum (γ = 0.85) is far clearer than the rounding
    g = torch.Generator().manual_seed(0)
    x, theta, phi = (torch.randn(64, 16, generator=g) for _ in range(3))
    theta, phi = {"w": theta[:16]}, {"w": phi[:16]}
    target = x @ (0.85 * theta["w"] + 0.15 * phi["w"])

    def metric(p):
        return ((x @ p["w"] - target) ** 2).mean(), torch.tensor(1.0)

    exact = LazyTeacher().choose(theta, [phi], metric)
    fast = LazyTeacher(score_precision="bfloat16").choose(theta, [phi], metric)
    assert float(exact.gamma) == float(fast.gamma) == pytest.approx(0.85)
    assert float(exact.loss) < 1e-10 < float(fast.loss)  # the candidates really were scored in bfloat16
    leapt = LazyTeacher.leap(theta, [phi], fast)  # the leap itself stays in full precision
    assert leapt["w"].dtype == torch.float32 and float(metric(leapt)[0]) < 1e-10


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="score_precision"):
        LazyTeacher(score_precision="float16")
    with pytest.raises(ValueError, match="select"):
        LazyTeacher(select="acc")
    with pytest.raises(ValueError, match="gammas"):
        LazyTeacher(gammas=(1.5,))
