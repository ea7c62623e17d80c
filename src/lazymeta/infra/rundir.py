"""The run directory every application writes: one lock, one config, one metrics log, one checkpoint.

A run directory holds ``config.yaml`` (the resolved config), ``metrics.jsonl`` (one JSON line per logged
step), ``state.pt`` (everything needed to resume), the application's weights and results, and ``.lock``.
Every file is written atomically; the metrics log is truncated to the checkpoint on resume, so a killed
run leaves no line twice. While a process holds the run (``with RunDir(path).open(...)``), a second one
is refused and told which process holds it.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from lazymeta.infra.errors import RunDirError
from lazymeta.infra.files import load_torch, save_torch, write_json, write_text

CONFIG, STATE, METRICS, RESULTS, LOCK = "config.yaml", "state.pt", "metrics.jsonl", "results.json", ".lock"
EXISTING = ("refuse", "resume", "reuse")


class RunDir:
    """One run's directory.

    Args:
        path: the directory (created when missing).
        step: the metrics' step key (``iteration``, ``epoch``): what ``truncate`` compares.
        writer: False on the ranks of a distributed run that only compute (rank 0 writes).
        tensorboard: also log numeric metrics as TensorBoard scalars under ``tensorboard/``; None: when
            the ``tensorboard`` package is installed.
    """

    def __init__(self, path: str | os.PathLike, step: str = "iteration", writer: bool = True,
                 tensorboard: bool | None = None):
        self.path, self.step, self.writer = Path(path), step, writer
        self._tensorboard, self._board, self._lock = tensorboard, None, None

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @contextlib.contextmanager
    def open(self, config: dict, existing: str = "refuse", resume_hint: str = "--resume") -> Iterator[RunDir]:
        """Hold the run for the duration: create the directory, take its lock, check what it already
        holds, write ``config.yaml``.

        ``existing``: ``refuse`` a directory with a checkpoint (a fresh run; a metrics log left by a run
        killed before its first checkpoint is removed), ``resume`` from its checkpoint, or ``reuse``
        whatever it holds (an application whose stages are keyed by their settings).
        """
        if existing not in EXISTING:
            raise ValueError(f"existing must be one of {EXISTING}, got {existing!r}")
        if not self.writer:
            yield self
            return
        self._create()
        with self._locked():
            if existing == "refuse" and (self.path / STATE).exists():
                raise RunDirError(f"{self.path} already holds a run; continue it with {resume_hint} "
                                  f"{self.path}, or choose another --out")
            if existing == "resume" and not (self.path / STATE).exists():
                raise RunDirError(f"{self.path / STATE} does not exist: {self.path} has no checkpoint to resume "
                                  f"from; start it without {resume_hint}")
            if existing == "refuse":
                (self.path / METRICS).unlink(missing_ok=True)
            write_text(self.path / CONFIG, yaml.safe_dump(config, sort_keys=False))
            try:
                yield self
            finally:
                if self._board is not None:
                    self._board.close()
                    self._board = None

    def _create(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise RunDirError(f"{self.path} is a file, not a directory: choose another --out") from None
        except NotADirectoryError:
            raise RunDirError(f"{self.path} lies under a file, not a directory: choose another --out") from None
        except PermissionError:
            raise RunDirError(f"{self.path} cannot be created (permission denied): choose another --out") from None
        if not self.path.is_dir():
            raise RunDirError(f"{self.path} is not a directory: choose another --out")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """An exclusive ``flock`` on ``.lock``, released by the kernel if the process dies."""
        handle = open(self.path / LOCK, "a+")
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                raise RunDirError(f"{self.path} is in use by {holder}; wait for it to finish, or choose "
                                  "another --out") from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"process {os.getpid()} on {os.uname().nodename}\n")
            handle.flush()
            yield
        finally:
            handle.close()

    @staticmethod
    def read_config(path: str | os.PathLike) -> dict:
        """The ``config.yaml`` of an existing run (to resume or evaluate it)."""
        from lazymeta.infra.config import load_yaml

        file = Path(path) / CONFIG
        if not file.is_file():
            raise RunDirError(f"{file} does not exist: is {path} a lazymeta run directory?")
        return load_yaml(file)

    def log(self, record: dict[str, Any]) -> None:
        """Append one line to ``metrics.jsonl`` (and TensorBoard scalars where enabled)."""
        if not self.writer:
            return
        with open(self.path / METRICS, "a") as f:
            f.write(json.dumps(record) + "\n")
        board = self._writer()
        if board is not None:
            for key, value in record.items():
                if key != self.step and isinstance(value, (int, float)) and not isinstance(value, bool):
                    board.add_scalar(key, value, record[self.step])

    def _writer(self) -> Any:
        if self._board is None and self._tensorboard is not False:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is not installed
                if self._tensorboard:
                    raise RunDirError("tensorboard logging was asked for, but the tensorboard package is not "
                                      "installed: pip install tensorboard") from None
                self._tensorboard = False
                return None
            self._board = SummaryWriter(str(self.path / "tensorboard"))
        return self._board

    def metrics(self) -> list[dict]:
        path = self.path / METRICS
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []

    def truncate(self, step: int) -> None:
        """Drop the metric lines after ``step`` (what a killed run logged after its last checkpoint)."""
        if self.writer and (self.path / METRICS).exists():
            kept = [r for r in self.metrics() if r[self.step] <= step]
            write_text(self.path / METRICS, "".join(json.dumps(r) + "\n" for r in kept))

    def save_state(self, state: dict) -> None:
        if self.writer:
            save_torch(self.path / STATE, state)

    def load_state(self) -> dict:
        return load_torch(self.path / STATE)

    def write_json(self, name: str, value: Any) -> None:
        if self.writer:
            write_json(self.path / name, value)

    def file(self, name: str) -> Path:
        return self.path / name

    def stage(self, name: str, key: dict) -> Path:
        """A sub-directory for a cached stage, named by a hash of the settings it depends on (``key``,
        written beside it as ``key.json``), so a stage is reused exactly when its settings are the same."""
        text = json.dumps(key, sort_keys=True)
        directory = self.path / name / hashlib.sha256(text.encode()).hexdigest()[:10]
        if not (directory / "key.json").exists():
            write_text(directory / "key.json", json.dumps(key, indent=1, sort_keys=True) + "\n")
        return directory
