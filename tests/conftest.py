"""Shared test fixtures: the real data in ``shared/data`` (read-only, never copied into the project)."""
from __future__ import annotations

import csv
import io
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from shared_data import require_shared

# Tests share 2 cores with each other (pytest -n 2): one thread each avoids OpenMP threads stalling
# at barriers for a core another process holds.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def omniglot_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root holding Omniglot as the official archives (rebuilt from the shared npz), already decoded.

    The rebuilt zips have the original 1-bit pixels but not the original bytes, so their md5 differs
    from the published one: they are decoded once with ``verify=False``, and every later
    ``load(..., root=omniglot_root)`` reads the cache.
    """
    from lazymeta.data import omniglot

    sources = {name: require_shared(f"omniglot/images_{name}.npz") for name in ("background", "evaluation")}
    with open(require_shared("omniglot/omniglot_index.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    root = tmp_path_factory.mktemp("data")
    (root / "omniglot").mkdir()
    for name, npz in sources.items():
        _write_archive(root / "omniglot", name, npz, rows)
    omniglot.prepare(root, verify=False)
    return root


def _write_archive(directory: Path, set_name: str, npz: Path, rows: list[dict]) -> None:
    """images_<set>.zip with images_<set>/<Alphabet>/characterNN/<charid>_<drawer>.png members, stored."""
    with np.load(npz) as source:
        images = source["images"]  # bool (characters, drawers, 105, 105), True = paper
    with zipfile.ZipFile(directory / f"images_{set_name}.zip", "w", zipfile.ZIP_STORED) as archive:
        for row in (r for r in rows if r["set"] == set_name):
            folder = f"images_{set_name}/{row['alphabet']}/{row['character']}"
            for drawer, pixels in enumerate(images[int(row["npz_row"])], start=1):
                png = io.BytesIO()
                Image.fromarray(pixels).save(png, format="PNG", compress_level=1)  # mode "1", like the originals
                archive.writestr(f"{folder}/{int(row['char_id']):04d}_{drawer:02d}.png", png.getvalue())


@pytest.fixture(scope="session")
def glyphs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root with the embedded glyphs dataset generated once for the whole session."""
    from lazymeta.data import load_split

    root = tmp_path_factory.mktemp("glyphs-root")
    load_split("glyphs", "train", root)
    return root


@pytest.fixture(scope="session")
def mnist_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The four shared MNIST files, decoded without the compressed md5 (the train images were re-gzipped
    here, so only their gzip wrapper differs; IDX headers and sizes are still checked)."""
    from lazymeta.data import mnist

    sources = [require_shared(f"mnist/{remote.filename}") for remotes in mnist.REMOTES.values() for remote in remotes]
    root = tmp_path_factory.mktemp("data")
    (root / "mnist").mkdir()
    for source in sources:
        shutil.copy(source, root / "mnist" / source.name)
    mnist.prepare(root, verify=False)
    return root
