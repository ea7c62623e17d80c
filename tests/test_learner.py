"""Test-time adaptation: label mapping, head size and the three test-time leaps of the lazy learners."""
import pytest
import torch

from lazymeta import params as P
from lazymeta.learner import MetaLearner, Task
from lazymeta.student import Student
from test_algorithms import Tiny, tiny_task


def trained_lazy_learner(test_leap):
    torch.manual_seed(0)
    model = Tiny().double()
    learner = MetaLearner(model, "lazy-maml", Student(steps=4, lr=0.3), test_leap=test_leap,
                          meta_optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    for i in range(3):
        learner.meta_step([Task(*tiny_task(10 + i))])
    return learner


def test_mean_leap_is_the_running_mean_of_the_chosen_gammas():
    learner = trained_lazy_learner("mean")
    gamma = float(learner.mean_leap().gamma)
    assert 0.75 <= gamma <= 0.95
    x, y = tiny_task(5)[:2]
    theta = P.clone(P.params_of(learner.model))
    phi_k = Student(4, 0.3).run(theta, lambda p: torch.nn.functional.cross_entropy(learner.forward(p, x), y))[-1]
    task = learner.adapt(x, y)
    for n in theta:
        torch.testing.assert_close(task.params[n], theta[n] + gamma * (phi_k[n] - theta[n]))


def test_student_leap_is_the_last_checkpoint_and_labels_map_back():
    learner = trained_lazy_learner("student")
    x, y = tiny_task(6)[:2]
    task = learner.adapt(x, y * 10 + 1)  # labels 1, 11, 21
    assert set(task.predict(x).tolist()) <= {1, 11, 21}
    theta = P.clone(P.params_of(learner.model))
    phi_k = Student(4, 0.3).run(theta, lambda p: torch.nn.functional.cross_entropy(learner.forward(p, x), y))[-1]
    for n in theta:
        torch.testing.assert_close(task.params[n], phi_k[n])


def test_holdout_leap_needs_two_shots_and_chooses_on_the_held_out_examples():
    learner = trained_lazy_learner("holdout")
    x, y = tiny_task(7)[:2]  # 2 examples per class
    task = learner.adapt(x, y)
    # by hand: the last example of each class is held out, (γ, α) chosen on it, then applied to the full run
    theta = P.clone(P.params_of(learner.model))
    held = torch.tensor([max(i for i in range(len(y)) if y[i] == c) for c in range(3)])
    kept = torch.tensor([i for i in range(len(y)) if i not in held.tolist()])
    ce = torch.nn.functional.cross_entropy
    student = Student(4, 0.3)
    def held_out(p):
        logits = learner.forward(p, x[held])
        return ce(logits, y[held]), (logits.argmax(-1) == y[held]).float().mean()

    choice = learner.teacher.choose(theta, student.run(theta, lambda p: ce(learner.forward(p, x[kept]), y[kept])),
                                    held_out)
    expected = learner.teacher.leap(theta, student.run(theta, lambda p: ce(learner.forward(p, x), y)), choice)
    for n in theta:
        torch.testing.assert_close(task.params[n], expected[n])
    with pytest.raises(ValueError, match="at least 2 support examples per class"):
        learner.adapt(x[:3], y[:3])


@pytest.mark.parametrize("algorithm", ["maml", "lazy-maml", "lazy-reptile"])
def test_tasks_in_threads_give_the_sequential_update(algorithm):
    def trained(threads):
        torch.manual_seed(0)
        model = Tiny().double()
        learner = MetaLearner(model, algorithm, Student(steps=3, lr=0.3), task_threads=threads,
                              meta_optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
        stats = [learner.meta_step([Task(*tiny_task(20 + i + j)) for j in range(4)]) for i in range(2)]
        return P.clone(P.params_of(model)), stats

    before = torch.get_num_threads()
    (sequential, seq_stats), (threaded, thr_stats) = trained(1), trained(3)
    assert torch.get_num_threads() == before  # the op-thread count is restored
    for n in sequential:
        torch.testing.assert_close(threaded[n], sequential[n], rtol=1e-12, atol=1e-12)
    for a, b in zip(seq_stats, thr_stats):
        assert a == pytest.approx(b, rel=1e-12)
    with pytest.raises(ValueError, match="task_threads"):
        MetaLearner(Tiny(), algorithm, Student(steps=1, lr=0.1), task_threads=0)


class Shifted(Tiny):
    """A model whose forward pass reads a buffer: the task threads' copies must see its current value."""

    def __init__(self):
        super().__init__()
        self.register_buffer("shift", torch.zeros(4))

    def forward(self, x):
        return super().forward(x + self.shift)


def test_the_task_threads_last_across_meta_steps_and_see_the_models_current_buffers():
    def trained(threads):
        torch.manual_seed(0)
        model = Shifted().double()
        learner = MetaLearner(model, "fomaml", Student(steps=3, lr=0.3), task_threads=threads,
                              meta_optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
        pools = []
        for i in range(3):
            model.shift.fill_(0.5 * i)  # changed between meta-steps, after the threads copied the model
            learner.meta_step([Task(*tiny_task(30 + i + j)) for j in range(4)])
            pools.append(learner._task_pool() if threads > 1 else None)
        return P.clone(P.params_of(model)), pools

    (sequential, _), (threaded, pools) = trained(1), trained(2)
    for n in sequential:
        torch.testing.assert_close(threaded[n], sequential[n], rtol=1e-12, atol=1e-12)
    assert pools[0] is pools[1] is pools[2]  # started once, not per meta-step


def conv_task(seed: int, ways: int = 3, shots: int = 2, queries: int = 2, size: int = 16) -> Task:
    g = torch.Generator().manual_seed(seed)
    train_x = torch.randn(ways * shots, 1, size, size, generator=g, dtype=torch.float64)
    val_x = torch.randn(ways * queries, 1, size, size, generator=g, dtype=torch.float64)
    return Task(train_x, torch.arange(ways).repeat(shots), val_x, torch.arange(ways).repeat(queries))


@pytest.mark.parametrize("algorithm,keep_last,select,chunk", [
    ("maml", 1, "loss", None), ("fomaml", 1, "loss", None), ("reptile", 1, "loss", None),
    ("lazy-maml", 1, "loss", None), ("lazy-maml", 3, "accuracy", None), ("lazy-maml", 2, "loss", 4),
    ("lazy-reptile", 2, "loss", None)])
def test_batched_tasks_give_the_sequential_update(algorithm, keep_last, select, chunk):
    """vmap over the tasks of a meta-batch, through batch-statistics batch norm, second order included
    (chunk=4: candidates vmapped too, as on a GPU)."""
    from lazymeta.models import Conv4
    from lazymeta.teacher import LazyTeacher

    def trained(batch_tasks):
        torch.manual_seed(0)
        model = Conv4(1, 16, 3, hidden=8).double()
        learner = MetaLearner(model, algorithm, Student(steps=3, lr=0.3, keep_last=keep_last),
                              LazyTeacher(select=select, alpha_step=0.25, chunk=chunk), batch_tasks=batch_tasks,
                              meta_optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
        stats = [learner.meta_step([conv_task(20 + i + j) for j in range(4)]) for i in range(2)]
        return P.clone(P.params_of(model)), stats, learner.leap_ema.clone()

    (sequential, seq_stats, seq_ema), (batched, bat_stats, bat_ema) = trained(False), trained(True)
    torch.manual_seed(0)
    start = P.clone(P.params_of(Conv4(1, 16, 3, hidden=8).double()))
    assert max(float((sequential[n] - start[n]).abs().max()) for n in start) > 1e-3  # the steps did something
    for n in sequential:
        torch.testing.assert_close(batched[n], sequential[n], rtol=1e-10, atol=1e-12)
    for a, b in zip(seq_stats, bat_stats):
        assert a == pytest.approx(b, rel=1e-10)
    torch.testing.assert_close(bat_ema, seq_ema, rtol=1e-12, atol=1e-12)


def test_batched_tasks_need_equal_shapes_and_exclude_task_threads():
    from lazymeta.models import Conv4

    learner = MetaLearner(Conv4(1, 16, 3, hidden=8).double(), "fomaml", Student(steps=1, lr=0.1), batch_tasks=True)
    with pytest.raises(ValueError, match=r"train_x has shapes \[\(6, 1, 16, 16\), \(9, 1, 16, 16\)\]"):
        learner.meta_step([conv_task(0), conv_task(1, shots=3)])
    with pytest.raises(ValueError, match="choose one"):
        MetaLearner(Conv4(1, 16, 3, hidden=8), "fomaml", Student(steps=1, lr=0.1), batch_tasks=True, task_threads=2)


def test_batching_by_default_only_on_a_gpu_and_for_equal_shapes(monkeypatch):
    from lazymeta.models import Conv4

    equal, unequal = [conv_task(0), conv_task(1)], [conv_task(0), conv_task(1, shots=3)]
    learner = MetaLearner(Conv4(1, 16, 3, hidden=8).double(), "lazy-maml", Student(steps=1, lr=0.1))
    assert not learner._batching(equal)  # a CPU: task by task
    learner.meta_step(unequal)
    monkeypatch.setattr(MetaLearner, "device", property(lambda self: torch.device("cuda")))
    assert learner._batching(equal) and not learner._batching(unequal)
    learner.task_threads = 2
    assert not learner._batching(equal)
    learner.batch_tasks, learner.task_threads = False, 1
    assert not learner._batching(equal)
