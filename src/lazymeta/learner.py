"""MetaLearner: meta-training steps over a meta-batch of tasks, and test-time adaptation.

The task loss and metric are an :class:`Objective` (classification by default); the meta-parameters are the
model's weights and the student's own (Meta-SGD's rates, Meta-Curvature's factors), trained together.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import vmap

from lazymeta.algorithms import Algorithm, Entropy, get_algorithm
from lazymeta.batchnorm import BN_MODES, forward_with_support_statistics
from lazymeta.params import Params, detach, functional, params_of, unflat
from lazymeta.student import Student, TrainLoss
from lazymeta.teacher import LazyTeacher, Leap, Metric, ValMetric

# How a lazy learner picks its leap when the task's validation labels are unknown (test time).
TEST_LEAPS = ("student", "mean", "holdout")
EMA_DECAY = 0.99


class Task(NamedTuple):
    """One meta-training task: D_tr for the student, D_val for the teacher and the outer loss."""

    train_x: Tensor
    train_y: Tensor
    val_x: Tensor
    val_y: Tensor


class NonFiniteLossError(FloatingPointError):
    def __init__(self, task: int | None, loss: float):
        where = f"in task {task} of the meta-batch" if task is not None else "in another rank's task"
        super().__init__(f"non-finite validation loss {loss} {where}; lower the inner or meta learning rate")
        self.task = task


class TaskLosses(NamedTuple):
    """What the algorithms see of one task (or of a batch of tasks, with a leading task dimension): the
    student's training loss, the validation (loss, accuracy) metric and, where the objective has one,
    the mean entropy of the predictions on D_tr (TAML's term)."""

    train: Callable[[Params], Tensor]
    metric: Metric
    entropy: Entropy | None = None


class Objective(Protocol):
    """A task loss and metric: how a :class:`Task`'s tensors become :class:`TaskLosses`."""

    def losses(self, forward: Callable[[Params, Tensor], Tensor], task: Task) -> TaskLosses:
        """One task's."""

    def batched_losses(self, forward: Callable[[Params, Tensor], Tensor], tasks: Task) -> TaskLosses:
        """T tasks' stacked along a leading dimension, for parameters with a leading task dimension: the
        training losses summed (each task's gradient is that of its own loss), metric and entropy per task."""


@dataclass(frozen=True)
class Classification:
    """Cross-entropy and accuracy on the first ``ways`` logits (the default objective)."""

    ways: int

    def losses(self, forward: Callable[[Params, Tensor], Tensor], task: Task) -> TaskLosses:
        train_loss, metric = classification_losses(forward, self.ways, *task)
        return TaskLosses(train_loss, metric, lambda p: _entropy(forward(p, task.train_x)[:, :self.ways]))

    def batched_losses(self, forward: Callable[[Params, Tensor], Tensor], tasks: Task) -> TaskLosses:
        train_loss, metric = batched_classification_losses(forward, self.ways, *tasks)
        return TaskLosses(train_loss, metric,
                          lambda p: vmap(lambda q, x: _entropy(forward(q, x)[:, :self.ways]))(p, tasks.train_x))


def _entropy(logits: Tensor) -> Tensor:
    """The mean entropy of the softmax predictions."""
    log_p = F.log_softmax(logits, -1)
    return -(log_p.exp() * log_p).sum(-1).mean()


def _episode_losses(forward: Callable[[Params, Tensor], Tensor], ways: int
                    ) -> tuple[Callable[[Params, Tensor, Tensor], Tensor], Callable[[Params, Tensor, Tensor], tuple[Tensor, Tensor]]]:
    """Cross-entropy and (loss, accuracy) of one parameter set on one batch, on the first ``ways`` logits."""

    def loss(p: Params, x: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(forward(p, x)[:, :ways], y)

    def metric(p: Params, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        logits = forward(p, x)[:, :ways]
        return F.cross_entropy(logits, y), (logits.argmax(-1) == y).float().mean()

    return loss, metric


def classification_losses(forward: Callable[[Params, Tensor], Tensor], ways: int, train_x: Tensor,
                          train_y: Tensor, val_x: Tensor, val_y: Tensor) -> tuple[TrainLoss, ValMetric]:
    """The student's training loss and the (loss, accuracy) metric of one task; where the model has its own
    cross-entropy gradient, each carries it (and the metric its graph-free forward pass)."""
    loss, metric = _episode_losses(forward, ways)
    manual = getattr(getattr(forward, "module", None), "cross_entropy_gradient", None)
    gradient, val = (manual(train_x, train_y, ways), manual(val_x, val_y, ways)) if manual else (None, None)
    train = TrainLoss(lambda p: loss(p, train_x, train_y), gradient, gradient and gradient.layout,
                      gradient and gradient.differentiable, gradient and gradient.hessian_at)
    return train, ValMetric(lambda p: metric(p, val_x, val_y), val and val.scores, val and val.value_and_gradient)


def batched_classification_losses(forward: Callable[[Params, Tensor], Tensor], ways: int, train_x: Tensor,
                                  train_y: Tensor, val_x: Tensor, val_y: Tensor
                                  ) -> tuple[Callable[[Params], Tensor], Metric]:
    """The same for T tasks stacked along a leading dimension, for parameters with a leading task
    dimension: the training losses summed (each task's gradient is that of its own loss), the metric per task."""
    loss, metric = _episode_losses(forward, ways)
    return (lambda p: vmap(loss)(p, train_x, train_y).sum()), (lambda p: vmap(metric)(p, val_x, val_y))


@dataclass
class TaskModel:
    """A model adapted to one support set. ``predict`` returns labels in the support set's own label values."""

    module: nn.Module
    params: Params
    classes: Tensor
    support_x: Tensor

    def logits(self, x: Tensor, bn: str = "transductive") -> Tensor:
        """Logits of a batch shaped like the support set (N, C, H, W), or of one image (C, H, W)."""
        if bn not in BN_MODES:
            raise ValueError(f"bn must be one of {BN_MODES}, got {bn!r}")
        if x.dim() == self.support_x.dim() - 1:
            x = x.unsqueeze(0)
        if x.shape[1:] != self.support_x.shape[1:]:
            raise ValueError(f"expected images shaped like the support set's {tuple(self.support_x.shape[1:])}, "
                             f"one (C, H, W) or a batch (N, C, H, W), got {tuple(x.shape)}")
        x = x.to(self.support_x.device)
        forward = functional(self.module)
        with torch.no_grad():
            if bn == "transductive":
                out = forward(self.params, x)
            else:
                out = forward_with_support_statistics(self.module, forward, self.params, self.support_x, x)
        return out[:, :len(self.classes)]

    def predict(self, x: Tensor, bn: str = "transductive") -> Tensor:
        return self.classes[self.logits(x, bn).argmax(-1)]


class MetaLearner:
    """A meta-model θ (an ordinary ``nn.Module``) trained by one of the algorithms of :mod:`lazymeta.algorithms`.

    Args:
        model: the backbone; for classification its head size is the largest number of ways it can
            adapt to. A model with a ``channels_last`` attribute (Conv4) gets the layout that is faster
            for the algorithm: NCHW where autograd's double backward runs through it (second order
            without the model's hand-written derivatives), else NHWC.
        algorithm: a name of :data:`~lazymeta.algorithms.ALGORITHMS` (``lazy-maml``, ``maml``, ``imaml``,
            ...) or an Algorithm.
        student: the inner loop used in meta-training (an algorithm with its own inner rule, Meta-SGD's
            say, runs that rule with this student's k, lr and b). Its meta-parameters, if any, are
            :attr:`meta` and join the meta-optimizer's parameters as a group of their own.
        teacher: the lazy teacher (lazy algorithms only).
        meta_optimizer: updates θ; its gradient is the mean over the meta-batch of each task's contribution.
        test_leap: for lazy algorithms, how the task model is chosen at test time, when the query
            labels are unknown: ``student`` (default: the student's last checkpoint φ_k, as MAML and
            Reptile evaluate; it scored highest in our Omniglot measurements, see docs/results.md),
            ``mean`` (the leap with the running mean of the γ and α chosen in meta-training) or
            ``holdout`` (choose (γ, α) on one held-out support example per class, then apply them to a
            student run on the whole support set; needs K > 1).
        test_steps: student steps at test time (default: the training k).
        task_threads: on a CPU, run the meta-batch's tasks in this many threads of one op-thread each
            instead of one task at a time on all op threads. A task's small convolutions scale poorly
            over cores, independent tasks scale well (benchmarks/meta_step.py). Same update up to
            float rounding.
        batch_tasks: run the meta-batch's tasks together, one vmapped forward and one backward per
            student step and per teacher candidate (parameters get a leading task dimension, convolutions
            become grouped ones). Fewer, larger kernels: a win where kernel launches dominate (GPUs),
            not on a CPU (docs/performance.md). ``None``: on a GPU, for meta-batches of equal-shaped
            tasks (without task threads); ``True`` requires equal shapes. Same update up to float
            rounding, second-order MAML included (autograd runs outside vmap).
        clip: clamp every element of the meta-gradient to [-clip, clip] before the outer step (MAML's
            miniImageNet protocol clips at 10).
        objective: the task loss and metric; None: :class:`Classification` over the model's head.
    """

    def __init__(self, model: nn.Module, algorithm: str | Algorithm, student: Student,
                 teacher: LazyTeacher | None = None, meta_optimizer: torch.optim.Optimizer | None = None,
                 test_leap: str = "student", test_steps: int | None = None, task_threads: int = 1,
                 batch_tasks: bool | None = None, clip: float | None = None, objective: Objective | None = None):
        if task_threads < 1:
            raise ValueError(f"task_threads must be >= 1, got {task_threads}")
        if batch_tasks and task_threads > 1:
            raise ValueError("batch_tasks and task_threads > 1 are two ways to run a meta-batch's tasks; choose one")
        if clip is not None and clip <= 0:
            raise ValueError(f"clip must be > 0 or None, got {clip}")
        self.model, self.task_threads, self.batch_tasks, self.clip = model, task_threads, batch_tasks, clip
        self.algorithm = get_algorithm(algorithm) if isinstance(algorithm, str) else algorithm
        if hasattr(model, "channels_last"):  # a model with a layout option (Conv4): the faster one for this tie
            model.channels_last = not self.algorithm.second_order or bool(getattr(model, "hand_written", False))
        if self.algorithm.lazy and teacher is None:
            teacher = LazyTeacher()
        if test_leap not in TEST_LEAPS:
            raise ValueError(f"test_leap must be one of {TEST_LEAPS}, got {test_leap!r}")
        self.student, self.teacher, self.test_leap = self.algorithm.student(student), teacher, test_leap
        self.test_steps = student.steps if test_steps is None else test_steps
        # the student's own meta-parameters, trained with θ
        self.meta = {n: nn.Parameter(t) for n, t in self.student.meta_parameters(params_of(model)).items()}
        self.optimizer = meta_optimizer or torch.optim.Adam(model.parameters(), lr=1e-3)
        if self.meta:
            self.optimizer.add_param_group({"params": list(self.meta.values())})
        self.forward = functional(model)
        self.ways = _head_size(model) if objective is None else None
        self.objective = objective or Classification(self.ways)
        # Exponential moving average of the teacher's (γ, α) choices, bias-corrected by `leap_count`, and
        # how many tasks chose each γ of the grid (whether the teacher sits at an edge of its grid).
        self.leap_ema = torch.zeros(1 + student.keep_last, dtype=torch.float64)
        self.leap_count = 0
        self.gamma_counts = torch.zeros(len(teacher.gammas) if teacher is not None else 0, dtype=torch.float64)
        # How a user's PIL image becomes an input (set by lazymeta.load from the training data).
        self.transform: Callable[[Any], Tensor] | None = None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def meta_step(self, tasks: Sequence[Task]) -> dict[str, float]:
        """One outer update from a meta-batch; returns the mean validation loss/accuracy (and γ̂).

        Under ``torch.distributed`` each rank passes its share of the meta-batch; one all-reduce of a
        flat vector (gradient sums, metric sums, task count) makes the update identical on every rank.
        """
        theta = params_of(self.model)
        every = {**theta, **self.meta}
        sums = [torch.zeros_like(p) for p in every.values()]
        losses, accs, leaps, picks = [], [], [], []
        for grads, loss, acc, leap in self._run_tasks(theta, tasks):  # summed in task order, however run
            for s, g in zip(sums, grads):
                s.add_(g)
            losses.append(loss.reshape(-1))  # one task's scalar or a batch of tasks' vector
            accs.append(acc.reshape(-1))
            if leap is not None:
                leaps.append(torch.cat([leap.gamma.unsqueeze(-1), leap.alpha], -1).reshape(-1, 1 + leap.alpha.shape[-1]))
                picks.append(leap.gamma.reshape(-1, 1) == self._gamma_grid(leap.gamma))
        losses_t = torch.cat(losses)
        finite = torch.isfinite(losses_t)
        choices = torch.cat([torch.cat(leaps).sum(0), torch.cat(picks).sum(0).to(losses_t)]) if leaps else \
            losses_t.new_zeros(0)
        metrics = torch.cat([torch.stack([losses_t.nan_to_num().sum(), torch.cat(accs).sum(),
                                          (~finite).sum().to(losses_t), losses_t.new_full((), len(tasks))]), choices])
        total = _all_reduce(torch.cat([*(s.reshape(-1) for s in sums), metrics.to(sums[0])]))
        grads, metrics = total[:-len(metrics)], total[-len(metrics):].double().cpu()  # read back once per step
        loss, acc, bad, count = metrics[:4].tolist()
        if bad:
            index = None if finite.all() else int(torch.nonzero(~finite)[0])
            raise NonFiniteLossError(index, float("nan") if index is None else float(losses_t[index]))
        grads = grads / count
        if self.clip is not None:
            grads.clamp_(-self.clip, self.clip)
        for p, g in zip(every.values(), unflat(grads, every).values()):
            p.grad = g  # views into one fresh buffer: no copy needed
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        stats = {"loss": loss / count, "accuracy": acc / count}
        if leaps:
            b = self.student.keep_last
            stats["gamma"] = self._track_leaps(metrics[4:5 + b] / count)
            self.gamma_counts += metrics[5 + b:]
        return stats

    def _task_update(self, theta: Params, task: Task, forward: Callable[[Params, Tensor], Tensor] | None = None
                     ) -> tuple[list[Tensor], Tensor, Tensor, Leap | None]:
        """One task's contribution to θ's update, its validation loss and accuracy, and the teacher's leap."""
        task = Task(*(t.to(self.device) for t in task))
        return self._contribution(theta, self.meta, self.objective.losses(forward or self.forward, task))

    def _contribution(self, theta: Params, meta: Params, losses: TaskLosses
                      ) -> tuple[list[Tensor], Tensor, Tensor, Leap | None]:
        adapted = self.algorithm.adapt(theta, self.student, self.teacher, losses.train, losses.metric, meta)
        grads, (loss, acc) = self.algorithm.meta_gradient(theta, adapted, losses.metric, meta, losses.entropy)
        return grads, loss, acc, adapted.leap

    def _batched_update(self, theta: Params, tasks: Sequence[Task]) -> tuple[list[Tensor], Tensor, Tensor, Leap | None]:
        """The summed contribution of all tasks, computed with a leading task dimension; per-task
        validation losses, accuracies and leaps."""
        stacked = Task(*(torch.stack(parts).to(self.device) for parts in zip(*tasks)))

        def per_task(params: Params) -> Params:  # views: gradients flow to the meta-parameters
            return {n: p.expand(len(tasks), *p.shape) for n, p in params.items()}

        grads, loss, acc, leap = self._contribution(per_task(theta), per_task(self.meta),
                                                    self.objective.batched_losses(self.forward, stacked))
        return [g.sum(0) for g in grads], loss, acc, leap

    def _batching(self, tasks: Sequence[Task]) -> bool:
        mismatch = _shape_mismatch(tasks)
        if self.batch_tasks and not self.algorithm.batchable:
            raise ValueError(f"{self.algorithm.name} runs a meta-batch's tasks one at a time: set batch_tasks=False or None")
        if not self.algorithm.batchable:
            return False
        if self.batch_tasks and mismatch:
            raise ValueError(f"batch_tasks needs tasks of one shape, but {mismatch}; "
                             "sample equal-sized episodes or set batch_tasks=False")
        if self.batch_tasks is not None:
            return self.batch_tasks
        return self.device.type == "cuda" and self.task_threads == 1 and not mismatch

    def _run_tasks(self, theta: Params, tasks: Sequence[Task]) -> Iterator[tuple]:
        if self._batching(tasks):
            yield self._batched_update(theta, tasks)
            return
        workers = min(self.task_threads, len(tasks))
        if workers == 1 or self.device.type != "cpu":
            yield from (self._task_update(theta, task) for task in tasks)  # one task's gradients alive at a time
            return
        pool = self._task_pool()
        with _one_op_thread():
            yield from pool.executor.map(lambda task: self._task_update(theta, task, pool.forward()), tasks)

    def _task_pool(self) -> _TaskPool:
        """The task threads, started once per model and thread count: starting them and copying the model
        per meta-step costs a noticeable share of a small task's meta-step."""
        pool = _TASK_POOLS.get(self)
        if pool is None or pool.model is not self.model or pool.workers != self.task_threads:
            if pool is not None:
                pool.executor.shutdown()
            pool = _TASK_POOLS[self] = _TaskPool(self.model, self.task_threads)
        return pool

    def _gamma_grid(self, like: Tensor) -> Tensor:
        """The teacher's γ values, as the leaps report them (same dtype and device), for counting choices."""
        return torch.tensor(list(self.teacher.gammas), dtype=torch.float64).to(like)

    def gamma_fractions(self) -> dict[str, float]:
        """The fraction of meta-training tasks whose teacher chose each γ of the grid."""
        total = float(self.gamma_counts.sum())
        return {f"{g:g}": float(c) / total for g, c in zip(self.teacher.gammas, self.gamma_counts)} if total else {}

    def _track_leaps(self, mean_choice: Tensor) -> float:
        """Update the moving average of (γ, α) with the meta-batch's mean choice; return its γ."""
        self.leap_ema.mul_(EMA_DECAY).add_(mean_choice, alpha=1 - EMA_DECAY)
        self.leap_count += 1
        return float(mean_choice[0])

    def mean_leap(self) -> Leap:
        """The bias-corrected running mean of the chosen γ and α (uniform α and the grid's mean γ before any step)."""
        if self.leap_count == 0:
            b = self.student.keep_last
            gamma = torch.tensor(sum(self.teacher.gammas) / len(self.teacher.gammas))
            alpha = torch.full((b,), 1 / b)
        else:
            mean = self.leap_ema / (1 - EMA_DECAY ** self.leap_count)
            gamma, alpha = mean[0].float(), (mean[1:] / mean[1:].sum()).float()
        nan = torch.tensor(float("nan"))
        return Leap(gamma.to(self.device), alpha.to(self.device), nan, nan)

    def adapt(self, support_x: Tensor, support_y: Tensor) -> TaskModel:
        """Adapt θ to a support set with any labels (at most the head size of distinct ones)."""
        support_x = support_x.to(self.device)
        classes, y = torch.unique(support_y.to(self.device), return_inverse=True)
        if len(classes) > self.ways:
            raise ValueError(f"the support set has {len(classes)} classes but the model's head has {self.ways}")
        theta = detach(params_of(self.model))
        student = dataclasses.replace(self.student, steps=self.test_steps)
        train_loss, _ = classification_losses(self.forward, len(classes), support_x, y, support_x, y)
        checkpoints = student.run(theta, train_loss, meta=self.meta)
        params = checkpoints[-1]
        if self.algorithm.lazy and self.test_leap != "student":
            leap = self.mean_leap() if self.test_leap == "mean" else self._holdout_leap(theta, support_x, y)
            params = self.teacher.leap(theta, checkpoints, leap)
        return TaskModel(self.model, detach(params), classes, support_x)

    def _holdout_leap(self, theta: Params, x: Tensor, y: Tensor) -> Leap:
        """Choose (γ, α) by holding out the last support example of each class."""
        ways = int(y.max()) + 1
        last = torch.stack([torch.nonzero(y == c)[-1, 0] for c in range(ways)])
        keep = torch.ones(len(y), dtype=torch.bool, device=y.device)
        keep[last] = False
        if not keep.any() or len(torch.unique(y[keep])) < ways:
            raise ValueError("test_leap='holdout' needs at least 2 support examples per class")
        student = dataclasses.replace(self.student, steps=self.test_steps)
        train_loss, val_metric = classification_losses(self.forward, ways, x[keep], y[keep], x[last], y[last])
        return self.teacher.choose(theta, student.run(theta, train_loss, meta=self.meta), val_metric)

    def meta_parameters(self) -> Params:
        """Every meta-parameter by name: the model's, then the student's own (``rate/...``, ``curvature/...``)."""
        return {**params_of(self.model), **self.meta}

    def load_meta_parameters(self, weights: Params) -> None:
        """Set the meta-parameters from :meth:`meta_parameters`' names (a model's own state_dict too)."""
        missing = sorted(set(self.meta) - set(weights))
        if missing:
            raise ValueError(f"no values for the {self.algorithm.name} meta-parameters {missing[:3]}...")
        with torch.no_grad():
            for n, p in self.meta.items():
                p.copy_(weights[n])
        self.model.load_state_dict({n: w for n, w in weights.items() if n not in self.meta})

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "meta": {n: p.detach().clone() for n, p in self.meta.items()},
                "leap_ema": self.leap_ema.clone(), "leap_count": self.leap_count,
                "gamma_counts": self.gamma_counts.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.load_meta_parameters({**state["model"], **state.get("meta", {})})
        self.optimizer.load_state_dict(state["optimizer"])
        self.leap_ema.copy_(state["leap_ema"])
        self.leap_count = int(state["leap_count"])
        self.gamma_counts.copy_(state["gamma_counts"])


class _TaskPool:
    """Threads of one op thread each, every one with its own copy of the model: functional_call swaps
    parameters into the module it calls. θ itself is shared and only read; the copies' buffers are brought up
    to date before each task."""

    def __init__(self, model: nn.Module, workers: int):
        self.model, self.workers, self.local = model, workers, threading.local()
        # the threads hold the model and their copies, not this pool: when the learner goes, so do they
        self.executor = ThreadPoolExecutor(workers, initializer=_start_task_thread, initargs=(model, self.local))

    def forward(self) -> Callable[[Params, Tensor], Tensor]:
        """This thread's copy of the model as a function, its buffers the model's."""
        with torch.no_grad():
            for mine, current in zip(self.local.model.buffers(), self.model.buffers()):
                mine.copy_(current)
        return self.local.forward


def _start_task_thread(model: nn.Module, local: threading.local) -> None:
    torch.set_num_threads(1)  # OpenMP's thread count is per calling thread
    local.model = copy.deepcopy(model)
    local.forward = functional(local.model)


# a learner's task threads, ended with it (not an attribute: a learner stays copyable)
_TASK_POOLS: weakref.WeakKeyDictionary[MetaLearner, _TaskPool] = weakref.WeakKeyDictionary()


def _shape_mismatch(tasks: Sequence[Task]) -> str:
    """Which field of the tasks has more than one shape ('' when none has)."""
    for field, parts in zip(Task._fields, zip(*tasks)):
        shapes = sorted({tuple(p.shape) for p in parts})
        if len(shapes) > 1:
            return f"{field} has shapes {shapes}"
    return ""


_last_reduced: list[Tensor] = []


def _all_reduce(vector: Tensor) -> Tensor:
    """Sum over ranks when running under torch.distributed (each rank holds its tasks' sums).

    The tensor stays referenced until the next reduction: gloo's worker thread may release its reference
    after ``all_reduce`` returned, and if that were the last one during interpreter shutdown, the thread
    would die waiting for the GIL and abort the process (see ``infra.distributed.joined``).
    """
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(vector)
        _last_reduced[:] = [vector]
    return vector


def _head_size(model: nn.Module) -> int:
    head = getattr(model, "head", None)
    if not isinstance(head, nn.Linear):
        raise ValueError("MetaLearner needs a model whose classifier is a Linear layer named `head`")
    return head.out_features


@contextlib.contextmanager
def _one_op_thread() -> Iterator[None]:
    """torch's op threads set to 1 for the duration (the task threads supply the parallelism)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
