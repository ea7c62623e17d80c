"""`lazymeta data list` / `data fetch`: each dataset's state on this machine."""
from __future__ import annotations

import argparse
import hashlib
import shutil
from dataclasses import replace

import pytest
from format_writers import MNIST_FILES
from shared_data import require_shared

from lazymeta.data import DATASETS, catalog, mnist
from lazymeta.data import cli as data_cli


def _cli(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="lazymeta")
    data_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


@pytest.mark.data
def test_status_on_a_data_root(tmp_path, cifar10_root, capsys):
    shutil.copytree(cifar10_root / "cifar10", tmp_path / "cifar10")  # archive + decoded cache
    (tmp_path / "mnist").mkdir()
    for name in MNIST_FILES[2:]:  # t10k only: train files missing
        shutil.copy(require_shared(f"mnist/{name}"), tmp_path / "mnist" / name)
    (tmp_path / "miniimagenet").mkdir()
    for split in ("train", "val", "test"):
        (tmp_path / "miniimagenet" / f"{split}.csv").write_text("filename,label\n")
    (tmp_path / "cifar100").mkdir()
    (tmp_path / "cifar100" / "cifar-100-python.tar.gz").write_bytes(b"truncated")
    rows = {row["name"]: row for row in catalog.status(tmp_path)}
    assert list(rows) == list(DATASETS)
    assert {name: row["status"] for name, row in rows.items()} == {
        "glyphs": "not decoded", "omniglot": "missing", "miniimagenet": "not decoded", "tieredimagenet": "missing",
        "cifar-fs": "corrupt", "fc100": "corrupt", "cifar10": "corrupt",  # the rebuilt archive's md5 is not upstream's
        "cifar100": "corrupt", "mnist": "missing"}
    assert rows["mnist"]["size"] >= sum(require_shared(f"mnist/{n}").stat().st_size for n in MNIST_FILES[2:])
    assert rows["cifar10"]["source"] == "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    assert rows["miniimagenet"]["source"].startswith("user-provided")
    assert data_cli.run(_cli(["data", "list", "--data-root", str(tmp_path)])) == 0
    out = capsys.readouterr().out
    assert "mnist" in out and "missing" in out and "cifar-10-python.tar.gz" in out


@pytest.mark.data
def test_fetch_downloads_and_decodes(tmp_path, monkeypatch, capsys):
    for split, remotes in mnist.REMOTES.items():
        monkeypatch.setitem(mnist.REMOTES, split, tuple(
            replace(r, urls=(require_shared(f"mnist/{r.filename}").as_uri(),),
                    md5=hashlib.md5(require_shared(f"mnist/{r.filename}").read_bytes()).hexdigest())
            for r in remotes))
    monkeypatch.setitem(catalog.ENTRIES, "mnist", replace(
        catalog.ENTRIES["mnist"], options=(tuple(r for rs in mnist.REMOTES.values() for r in rs),)))
    assert data_cli.run(_cli(["data", "fetch", "mnist", "--data-root", str(tmp_path)])) == 0
    assert "mnist is ready" in capsys.readouterr().out
    assert {row["name"]: row["status"] for row in catalog.status(tmp_path)}["mnist"] == "present"


def test_fetch_of_a_user_provided_dataset_explains(tmp_path, capsys):
    assert data_cli.run(_cli(["data", "fetch", "tieredimagenet", "--data-root", str(tmp_path)])) == 1
    assert "cannot be downloaded automatically" in capsys.readouterr().err
