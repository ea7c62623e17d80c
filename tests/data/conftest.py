"""Fixtures of the dataset tests: real data from shared/data laid out as the originals."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from format_writers import CIFAR10_BATCHES, CIFAR10_NAMES, cifar_batch, python2_pickle, shared_cifar10, write_tar
from shared_data import require_shared

from lazymeta.data import cifar
from lazymeta.data.download import safe_extract_zip


@pytest.fixture(scope="session")
def cifar10_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """cifar-10-python.tar.gz in the original layout, its batches cut from the real shared subset."""
    x, y = shared_cifar10()
    members = {f"cifar-10-batches-py/{name}": cifar_batch(x[rows], y[rows].tolist())
               for name, rows in CIFAR10_BATCHES.items()}
    members["cifar-10-batches-py/batches.meta"] = python2_pickle(
        {"label_names": list(CIFAR10_NAMES), "num_cases_per_batch": 10000, "num_vis": 3072})
    path = tmp_path_factory.mktemp("archive") / "cifar-10-python.tar.gz"
    write_tar(path, members)
    return path


@pytest.fixture(scope="session")
def cifar10_root(tmp_path_factory: pytest.TempPathFactory, cifar10_archive: Path) -> Path:
    root = tmp_path_factory.mktemp("data")
    (root / "cifar10").mkdir()
    shutil.copy(cifar10_archive, root / "cifar10" / cifar.CIFAR10.archive.filename)
    cifar.prepare(cifar.CIFAR10, root, verify=False)
    return root


@pytest.fixture(scope="session")
def miniimagenet_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared miniImageNet zip (images/ + Ravi CSVs, 60 per class) extracted as users extract it."""
    archive = require_shared("miniimagenet/miniimagenet_84px_60-per-class.zip")
    root = tmp_path_factory.mktemp("data")
    safe_extract_zip(archive, root)
    return root
