"""The one way lazymeta writes a file (a temp file beside it, then renamed over it) and reads one back.

Readers, and a run resumed after a kill, see either the old file or the complete new one. A file that is
still unreadable (a disk that filled up, a copy cut short) is a :class:`RunDirError` that names it.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lazymeta.infra.errors import RunDirError


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temp file beside ``path``, flush it to disk, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; results and caches are as readable as their sources
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def write_json(path: str | os.PathLike, value: Any) -> None:
    write_text(path, json.dumps(value, indent=2) + "\n")


def save_weights(path: str | os.PathLike, tensors: dict, metadata: dict[str, str] | None = None) -> None:
    """Tensors (parameters or a state dict, on any device) as a safetensors file of contiguous CPU copies."""
    from safetensors.torch import save_file

    cpu = {n: t.detach().cpu().contiguous() for n, t in tensors.items()}
    atomic_write(path, lambda tmp: save_file(cpu, str(tmp), metadata=metadata))


def load_weights(path: str | os.PathLike, what: str = "weights") -> tuple[dict, dict[str, str]]:
    """The tensors and the string metadata of a safetensors file, or a RunDirError naming the file."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise RunDirError(f"{path} does not exist: no {what} there (is {path.parent} a lazymeta run directory?)")
    try:
        with safe_open(str(path), framework="pt") as f:
            return {name: f.get_tensor(name) for name in f.keys()}, dict(f.metadata() or {})
    except Exception as err:  # safetensors raises its own SafetensorError, or OSError / ValueError
        raise RunDirError(f"{path} is not a readable safetensors file ({err}): it was cut short or is not "
                          f"lazymeta's; restore it, or re-create it (train again, or resume from state.pt)") from None


def save_torch(path: str | os.PathLike, value: Any) -> None:
    import torch

    atomic_write(path, lambda tmp: torch.save(value, tmp))


def load_torch(path: str | os.PathLike, what: str = "checkpoint") -> Any:
    """A ``torch.save`` file of plain containers and tensors, or a RunDirError naming the file."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise RunDirError(f"{path} does not exist: {path.parent} has no {what} to resume from")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated zip: "PytorchStreamReader failed reading zip archive"
        raise RunDirError(f"{path} is not a readable {what} ({str(err).splitlines()[0]}): it was cut short or "
                          "copied incompletely; restore it, or start the run again in a new --out") from None
