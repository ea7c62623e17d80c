"""Run-directory files, each written atomically (temp file + rename) so a kill never leaves half a file."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from lazymeta._io import atomic_write
from lazymeta.params import Params

CONFIG, STATE, MODEL, METRICS, RESULTS = "config.yaml", "state.pt", "model.safetensors", "metrics.jsonl", "results.json"


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def save_state(run_dir: Path, state: dict) -> None:
    """Everything needed to resume: learner state, iteration, RNG state (plain containers and tensors)."""
    atomic_write(run_dir / STATE, lambda tmp: torch.save(state, tmp))


def load_state(run_dir: Path) -> dict:
    path = run_dir / STATE
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: {run_dir} has no checkpoint to resume from")
    return torch.load(path, map_location="cpu", weights_only=True)


def save_weights(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Tensors (parameters or a state dict, on any device) as a safetensors file of contiguous CPU copies."""
    cpu = {n: t.detach().cpu().contiguous() for n, t in tensors.items()}
    atomic_write(path, lambda tmp: save_file(cpu, str(tmp), metadata=metadata))


def save_model(run_dir: Path, weights: Params, metadata: dict) -> None:
    """Meta-parameters as safetensors, with the JSON-encoded metadata needed to use them."""
    save_weights(run_dir / MODEL, weights, {k: json.dumps(v) for k, v in metadata.items()})


def load_model(run_dir: Path) -> tuple[Params, dict]:
    from safetensors import safe_open

    path = run_dir / MODEL
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: is {run_dir} a lazymeta run directory?")
    with safe_open(str(path), framework="pt") as f:
        metadata = {k: json.loads(v) for k, v in (f.metadata() or {}).items()}
    return load_file(str(path)), metadata
