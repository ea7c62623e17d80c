import pytest
import torch

from lazymeta.student import AdamStudent, Student, build_student


def quadratic(target):
    return lambda p: 0.5 * ((p["w"] - target) ** 2).sum()


def test_steps_are_plain_sgd_and_the_last_b_are_kept():
    target = torch.tensor([1.0, -2.0])
    start = {"w": torch.zeros(2, requires_grad=True)}
    kept = Student(steps=5, lr=0.1, keep_last=3).run(start, quadratic(target))
    # w_t = (1 - (1 - lr)^t) * target for this quadratic
    expected = [(1 - 0.9 ** t) * target for t in (3, 4, 5)]
    assert len(kept) == 3
    for phi, e in zip(kept, expected):
        torch.testing.assert_close(phi["w"], e)
        assert phi["w"].grad_fn is None  # no graph survives a graph-free student


def test_short_runs_keep_what_exists_and_zero_steps_returns_the_start():
    start = {"w": torch.ones(2)}
    assert len(Student(steps=1, keep_last=4).run(start, quadratic(torch.zeros(2)))) == 2
    (only,) = Student(steps=0).run(start, quadratic(torch.zeros(2)))
    torch.testing.assert_close(only["w"], start["w"])


def test_create_graph_keeps_the_dependence_on_the_start_point():
    start = {"w": torch.tensor([0.5, 0.5], dtype=torch.float64, requires_grad=True)}
    (phi,) = Student(steps=3, lr=0.1).run(start, quadratic(torch.zeros(2, dtype=torch.float64)), create_graph=True)
    (grad,) = torch.autograd.grad(phi["w"].sum(), start["w"])
    torch.testing.assert_close(grad, torch.full((2,), 0.9 ** 3, dtype=torch.float64))


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="keep_last"):
        Student(keep_last=0)


@pytest.mark.parametrize("betas", [(0.9, 0.999), (0.0, 0.999)])  # the meta-attack's and Reptile's
def test_adam_student_is_torch_adam(betas):
    start = {"w": torch.tensor([1.0, -2.0, 0.5])}

    def loss(p):
        return (p["w"] ** 2 * torch.tensor([1.0, 3.0, 0.1])).sum()

    checkpoints = AdamStudent(steps=4, lr=0.1, keep_last=2, betas=betas).run(start, loss)
    w = start["w"].clone().requires_grad_(True)
    optimizer = torch.optim.Adam([w], lr=0.1, betas=betas)
    for _ in range(4):
        optimizer.zero_grad()
        loss({"w": w}).backward()
        optimizer.step()
    assert len(checkpoints) == 2
    torch.testing.assert_close(checkpoints[-1]["w"], w.detach())
    assert build_student("adam", 4, 0.1, 2, betas) == AdamStudent(4, 0.1, 2, betas)
    with pytest.raises(ValueError, match="first-order only"):
        AdamStudent().run(start, loss, create_graph=True)
