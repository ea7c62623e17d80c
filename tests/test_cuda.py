"""The GPU path: the same meta-updates as on the CPU, and no host synchronisation in the student's
inner loop or the teacher's choice. Skipped without a CUDA device (CI has none); on a GPU machine:
``pytest tests/test_cuda.py tests/run/test_cli.py tests/attack/test_end_to_end.py -k cuda``."""
import pytest
import torch

from lazymeta import params as P
from lazymeta.algorithms import ALGORITHMS
from lazymeta.learner import MetaLearner, Task, batched_classification_losses, classification_losses
from lazymeta.models import Conv4
from lazymeta.student import Student
from lazymeta.teacher import LazyTeacher
from test_learner import conv_task

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("batch_tasks", [False, True])
@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_meta_steps_on_cuda_equal_the_cpu_ones(algorithm, batch_tasks):
    """float64, so that only the kernels differ (the teacher also batches its candidates on a GPU)."""
    def trained(device):
        torch.manual_seed(0)
        model = Conv4(1, 16, 3, hidden=8).double().to(device)
        learner = MetaLearner(model, algorithm, Student(steps=3, lr=0.3, keep_last=2), LazyTeacher(alpha_step=0.25),
                              torch.optim.SGD(model.parameters(), lr=0.1), batch_tasks=batch_tasks)
        stats = [learner.meta_step([conv_task(20 + i + j) for j in range(4)]) for i in range(2)]
        return {n: p.detach().cpu() for n, p in P.params_of(model).items()}, stats

    (cpu, cpu_stats), (gpu, gpu_stats) = trained("cpu"), trained("cuda")
    for n in cpu:
        torch.testing.assert_close(gpu[n], cpu[n], rtol=1e-9, atol=1e-11)
    for a, b in zip(cpu_stats, gpu_stats):
        assert a == pytest.approx(b, rel=1e-6)  # accuracies are float32 means


@pytest.mark.parametrize("batched", [False, True])
def test_student_and_teacher_never_wait_for_the_gpu(batched):
    """k student steps, the teacher's choice among 5 γ x 21 α candidates, the leap and its meta-gradient
    queue kernels only: any host sync (``.item()``, a blocking copy, ...) raises."""
    torch.manual_seed(0)
    model = Conv4(1, 28, 5, 64).double().cuda()
    tasks = [Task(*(t.cuda() for t in conv_task(i, ways=5, shots=1, queries=3, size=28))) for i in range(4)]
    forward, theta = P.functional(model), P.params_of(model)
    if batched:
        train_loss, val_metric = batched_classification_losses(forward, 5, *(torch.stack(f) for f in zip(*tasks)))
        theta = {n: p.expand(len(tasks), *p.shape) for n, p in theta.items()}
    else:
        train_loss, val_metric = classification_losses(forward, 5, *tasks[0])
    student, teacher = Student(steps=10, lr=0.4, keep_last=2), LazyTeacher()

    def lazy_maml_task() -> None:
        checkpoints = student.run(theta, train_loss)
        leap = teacher.choose(theta, checkpoints, val_metric)
        loss, _ = val_metric(teacher.leap(theta, checkpoints, leap))
        torch.autograd.grad(loss.sum(), list(theta.values()))

    lazy_maml_task()  # the first call may copy the candidate grid to the GPU
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        lazy_maml_task()
    finally:
        torch.cuda.set_sync_debug_mode("default")
