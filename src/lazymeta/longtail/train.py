"""The long-tail training loop, its run directory and its report.

A run directory holds ``config.yaml`` (resolved), ``metrics.jsonl`` (one line per epoch), ``state.pt``
(model, optimizer, the method's own state and the selection state after the last finished epoch),
``model.safetensors`` (final) and ``best.safetensors`` (best epoch on the balanced validation set),
``results.json`` and ``weights.png``.
Epoch e's shuffling, augmentation and validation batches are pure functions of (seed, e), so a run resumed
after a kill repeats the uninterrupted one exactly.

Model selection never looks at the test set: the "best epoch" is the one with the highest balanced
validation accuracy (ties: the earliest); without a validation set only the final epoch is reported. The
test error of every epoch is logged too, for the reference code's protocol (its best test error over
epochs, which selects on the test set), reported beside ours and labelled as such.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lazymeta.data import ImageClasses
from lazymeta.infra.errors import TrainingError
from lazymeta.infra.files import load_weights, save_weights
from lazymeta.infra.interrupt import Interrupted, StopRequest, stop_on_signal
from lazymeta.infra.progress import progress
from lazymeta.infra.rundir import RESULTS, RunDir
from lazymeta.infra.runtime import pick_device, seed_everything
from lazymeta.longtail.config import LongtailConfig, validate
from lazymeta.longtail.data import LongTailData, build
from lazymeta.longtail.methods import MAGNITUDES, Context, Method, build_method, train_step
from lazymeta.longtail.report import (BEST, FEW_SHOT, MANY_SHOT, MODEL, PLOT, best_test, magnitudes, plot_weights,
                                      shot_groups)
from lazymeta.longtail.weights import class_balanced_weights
from lazymeta.models import build_model as build_backbone
from lazymeta.student import Student

_STREAMS = {"shuffle": 0, "augment": 1, "val": 2}


@dataclass(frozen=True)
class Tensors:
    """A split on the device: uint8 images and labels (copied from the read-only cache), normalised per batch."""

    images: Tensor
    labels: Tensor

    @classmethod
    def of(cls, data: ImageClasses, device: torch.device) -> Tensors:
        return cls(torch.tensor(data.images, device=device), torch.tensor(data.labels, device=device))


def generator(seed: int, epoch: int, stream: str) -> torch.Generator:
    """The random stream of one epoch: the same after a resume as in an uninterrupted run."""
    return torch.Generator().manual_seed(((seed * 1_000_003 + epoch) * 8 + _STREAMS[stream]) % 2**63)


def channel_stats(images: np.ndarray) -> tuple[Tensor, Tensor]:
    """Per-channel mean and std of the training images in [0, 1], shaped (1, C, 1, 1)."""
    x = torch.from_numpy(images).double().div(255).transpose(0, 1).reshape(images.shape[1], -1)
    return x.mean(1).float().view(1, -1, 1, 1), x.std(1).clamp(min=1e-3).float().view(1, -1, 1, 1)


def augment(x: Tensor, g: torch.Generator, flip: bool, pad: int = 4) -> Tensor:
    """Reflect-pad ``pad`` pixels, crop back to size at a random offset, flip half the images."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dy, dx = (torch.randint(0, 2 * pad + 1, (n,), generator=g).to(x.device) for _ in range(2))
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, :]
    out = padded[torch.arange(n, device=x.device)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)
    if flip:
        mirror = (torch.rand(n, generator=g) < 0.5).to(x.device).view(-1, 1, 1, 1)
        out = torch.where(mirror, out.flip(-1), out)
    return out


def lr_at(config: LongtailConfig, epoch: int) -> float:
    """Step schedule (x decay at each milestone) after an optional linear warm-up."""
    s = config.schedule
    lr = s.lr * s.decay ** sum(epoch >= m for m in s.milestones)
    return lr * min(1.0, (epoch + 1) / s.warmup_epochs) if s.warmup_epochs else lr


def build_model(config: LongtailConfig, data: ImageClasses) -> nn.Module:
    return build_backbone(config.model.name, in_channels=data.images.shape[1], image_size=data.images.shape[-1],
                          ways=data.num_classes, hidden=config.model.hidden)


def epoch_magnitudes(measured: dict[str, list[Tensor]], gammas: Sequence[float]) -> dict:
    """The epoch's mean of every measured magnitude (``gamma``: the mean chosen γ), and how often each γ of
    the grid was chosen (``gamma_histogram``)."""
    out = {key: float(torch.stack(measured[key]).double().mean()) for key in MAGNITUDES if key in measured}
    if "gamma" in measured:
        grid = torch.tensor(list(gammas), dtype=torch.float64)
        chosen = torch.stack(measured["gamma"]).double().cpu()
        nearest = (chosen[:, None] - grid[None]).abs().argmin(1)
        out["gamma_histogram"] = {f"{g:g}": int((nearest == i).sum()) for i, g in enumerate(gammas)}
    return out


class Trainer:
    """One run: data, model, optimizer and the epoch loop (state in :meth:`state_dict`)."""

    def __init__(self, config: LongtailConfig, data: LongTailData, device: torch.device):
        self.config, self.data, self.device = config, data, device
        seed_everything(config.seed)
        self.model = build_model(config, data.train).to(device)
        self.method: Method = build_method(config.method, device)
        s = config.schedule
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=s.lr, momentum=s.momentum,
                                         nesterov=s.nesterov and s.momentum > 0, weight_decay=s.weight_decay)
        self.counts = data.counts()
        self.class_weights = class_balanced_weights(self.counts, config.method.beta).to(device)
        self.mean, self.std = (t.to(device) for t in channel_stats(data.train.images))
        self.train_set = Tensors.of(data.train, device)
        self.val_set = Tensors.of(data.val, device) if data.val is not None else None
        self.test_set = Tensors.of(data.test, device)
        self.epoch, self.best = 0, {"epoch": None, "val_accuracy": -1.0}
        self.learned: dict | None = None  # per-class mean and std of the weights of the last re-weighted epoch

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "epoch": self.epoch,
                "best": self.best, "learned": self.learned, "method": self.method.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.method.load_state_dict(state["method"])
        self.epoch, self.best, self.learned = state["epoch"], state["best"], state["learned"]

    def normalise(self, images: Tensor) -> Tensor:
        return (images.float() / 255 - self.mean) / self.std

    def context(self, lr: float, epoch: int, step: int, batch: int) -> Context:
        """The look-ahead's η̃ and the student's rate are multiples of the current rate ``lr`` on the mean
        batch loss; by default |B| for a method whose reference sums the batch losses, else 1."""
        m = self.config.method
        if m.lookahead_scale is not None:
            scale = m.lookahead_scale
        else:
            scale = float(batch) if self.method.summed_lookahead else 1.0
        val = self.val_batch(epoch, step) if self.method.needs_val else None
        student_scale = scale if m.student_scale is None else m.student_scale
        student = Student(m.steps, student_scale * lr) if self.method.lazy else None
        teacher = self.config.teacher if self.method.lazy else None
        return Context(self.model, self.class_weights, val, scale * lr, student, teacher)

    def val_batch(self, epoch: int, step: int) -> tuple[Tensor, Tensor]:
        """A random balanced-validation batch (the whole set when it is no larger than ``val_batch``)."""
        size = len(self.val_set.labels)
        g = generator(self.config.seed, epoch * 1_000_000 + step, "val")
        rows = torch.randperm(size, generator=g)[:self.config.method.val_batch].to(self.device)
        return self.normalise(self.val_set.images[rows]), self.val_set.labels[rows]

    def run_epoch(self, epoch: int, stop: StopRequest | None = None) -> dict:
        """One pass over the shuffled training set; returns the epoch's metrics. A ``stop`` request (Ctrl-C)
        ends it between batches with :class:`Interrupted` (the last finished epoch stays the checkpoint)."""
        c, lr = self.config, lr_at(self.config, epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        reweight = not self.method.deferred or epoch >= c.schedule.reweight_from
        order = torch.randperm(len(self.train_set.labels), generator=generator(c.seed, epoch, "shuffle"))
        g = generator(c.seed, epoch, "augment")
        self.model.train()
        # float64: the spread of the learned part ε (~1e-3) is below float32 rounding of Σw² for w ~ 4
        losses, (sums, squares) = [], torch.zeros(2, len(self.counts), dtype=torch.float64)
        measured: dict[str, list[Tensor]] = {}
        for step, lo in enumerate(range(0, len(order), c.schedule.batch_size)):
            if stop is not None and stop.requested:
                raise Interrupted(f"stopped during epoch {epoch + 1}; the checkpoint holds epoch {epoch}: continue "
                                  f"with `lazymeta longtail --resume RUN_DIR`")
            rows = order[lo:lo + c.schedule.batch_size].to(self.device)
            x, y = self.normalise(self.train_set.images[rows]), self.train_set.labels[rows]
            if c.data.augment:
                x = augment(x, g, c.data.flip)
            loss, weighing = train_step(self.method, self.context(lr, epoch, step, len(y)), self.optimizer, x, y,
                                        reweight)
            if not torch.isfinite(loss):
                raise TrainingError(f"epoch {epoch + 1}, step {step + 1}: the loss is {loss.item()}")
            losses.append(loss.item())
            for key, value in weighing.magnitudes.items():
                measured.setdefault(key, []).append(value)
            w = weighing.weights
            sums.index_add_(0, y.cpu(), w.cpu().double())
            squares.index_add_(0, y.cpu(), w.cpu().double() ** 2)
        if reweight:
            mean = sums / torch.tensor(self.counts)
            std = (squares / torch.tensor(self.counts) - mean ** 2).clamp(min=0).sqrt()
            self.learned = {"epoch": epoch + 1, "mean": mean.tolist(), "std": std.tolist()}
        return {"lr": lr, "loss": float(np.mean(losses)), "reweight": reweight,
                **epoch_magnitudes(measured, self.config.teacher.gammas)}

    def evaluate(self, split: Tensors) -> dict:
        """Top-1 accuracy overall and per class (eval mode: running batch-norm statistics)."""
        self.model.eval()
        correct = torch.zeros(len(self.counts))
        total = torch.zeros(len(self.counts))
        loss = 0.0
        with torch.no_grad():
            for lo in range(0, len(split.labels), self.config.eval_batch):
                y = split.labels[lo:lo + self.config.eval_batch]
                logits = self.model(self.normalise(split.images[lo:lo + self.config.eval_batch]))
                loss += F.cross_entropy(logits, y, reduction="sum").item()
                correct.index_add_(0, y.cpu(), (logits.argmax(-1) == y).float().cpu())
                total.index_add_(0, y.cpu(), torch.ones(len(y)))
        per_class = (correct / total.clamp(min=1)).tolist()
        return {"accuracy": float(correct.sum() / total.sum()), "loss": loss / float(total.sum()),
                "per_class": per_class}


def train(config: LongtailConfig, run_dir: str | Path, resume: bool = False, progress: bool = True) -> dict:
    """Train into ``run_dir`` (resuming from its last finished epoch if ``resume``) and return the report.
    Ctrl-C or SIGTERM stops between batches with :class:`~lazymeta.infra.interrupt.Interrupted`."""
    config = validate(config)
    run = RunDir(run_dir, step="epoch")
    state = run.load_state() if resume else None
    if state is not None and config.schedule.epochs < state["epoch"]:
        raise TrainingError(f"{run.path} is at epoch {state['epoch']}; schedule.epochs={config.schedule.epochs} "
                            f"cannot undo that: give --epochs {state['epoch']} or more")
    d = config.data
    data = build(d.dataset, d.root, d.imbalance, d.head, d.holdout_per_class, d.profile, d.split_seed)
    trainer = Trainer(config, data, pick_device(config.device))
    with run.open(config.to_dict(), existing="resume" if resume else "refuse"), stop_on_signal() as stop:
        if state is not None:
            trainer.load_state_dict(state)
            run.truncate(trainer.epoch)
        try:
            _loop(trainer, run, progress, stop)
        except Interrupted as err:
            raise Interrupted(str(err).replace("RUN_DIR", str(run.path))) from None
        return report(trainer, run)


def _loop(trainer: Trainer, run: RunDir, shown: bool, stop: StopRequest) -> None:
    epochs = trainer.config.schedule.epochs
    for epoch in progress(range(trainer.epoch, epochs), epochs, "long-tail", trainer.epoch, shown, unit="epochs"):
        began = time.perf_counter()
        record = {"epoch": epoch + 1, **trainer.run_epoch(epoch, stop)}
        if trainer.val_set is not None:
            val = trainer.evaluate(trainer.val_set)
            record.update(val_accuracy=val["accuracy"], val_loss=val["loss"])
            if val["accuracy"] > trainer.best["val_accuracy"]:
                trainer.best = {"epoch": epoch + 1, "val_accuracy": val["accuracy"]}
                save_weights(run.file(BEST), trainer.model.state_dict())
        record["test_error"] = 100 * (1 - trainer.evaluate(trainer.test_set)["accuracy"])
        record["seconds"] = time.perf_counter() - began
        trainer.epoch = epoch + 1
        run.save_state(trainer.state_dict())
        run.log(record)
    save_weights(run.file(MODEL), trainer.model.state_dict())


def _test(trainer: Trainer, weights: Path, epoch: int) -> dict:
    trainer.model.load_state_dict(load_weights(weights, "long-tail model")[0])
    result = trainer.evaluate(trainer.test_set)
    return {"epoch": epoch, "error": 100 * (1 - result["accuracy"]), "groups": shot_groups(trainer.counts,
                                                                                          result["per_class"]),
            "per_class_accuracy": result["per_class"]}


def report(trainer: Trainer, run: RunDir) -> dict:
    """Test top-1 error (%) at the final epoch, at the best validation epoch and (the reference's protocol) at
    the best test epoch, and the method's logged magnitudes; written to results.json."""
    c, counts = trainer.config, trainer.counts
    results = {
        "dataset": c.data.dataset, "method": c.method.name, "model": c.model.name, "seed": c.seed,
        "imbalance": c.data.imbalance, "train_counts": counts, "real_imbalance": max(counts) / min(counts),
        "validation_per_class": c.data.holdout_per_class, "test_images": len(trainer.data.test.labels),
        "shot_thresholds": f"many n > {MANY_SHOT}, medium {FEW_SHOT} <= n <= {MANY_SHOT}, few n < {FEW_SHOT}",
        "final": _test(trainer, run.file(MODEL), trainer.epoch),
        "best": _test(trainer, run.file(BEST), trainer.best["epoch"]) if trainer.best["epoch"] else None,
        "best_val_accuracy": trainer.best["val_accuracy"] if trainer.best["epoch"] else None,
        "best_test": best_test(run.metrics()), "magnitudes": magnitudes(run.metrics()),
        "class_weights": trainer.class_weights.tolist(), "learned_weights": trainer.learned,
    }
    trainer.model.load_state_dict(load_weights(run.file(MODEL), "long-tail model")[0])
    run.write_json(RESULTS, results)
    plot_weights(results, run.file(PLOT))
    return results
