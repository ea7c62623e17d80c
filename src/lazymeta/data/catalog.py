"""What `lazymeta data list` and `lazymeta data fetch NAME` show and do: each dataset's state on this machine.

A dataset is ``present`` (decoded cache there), ``not decoded`` (originals there and verified, not yet
decoded), ``corrupt`` (an original fails its size or checksum) or ``missing``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lazymeta.data import (
    DATASETS,
    data_root,
    dataset_module,
    miniimagenet,
    mnist,
    omniglot,
    tieredimagenet,
)
from lazymeta.data.cifar import CIFAR10, CIFAR100, CifarSet
from lazymeta.data.download import DatasetError, Remote, _verify


@dataclass(frozen=True)
class Entry:
    """Where a dataset lives under the data root and what it is made from."""

    folder: str
    options: tuple[tuple[Remote, ...], ...]  # alternative complete sets of originals (any one suffices)
    caches: str  # glob, under the folder, of the decoded caches
    source: str


def _cifar(dataset: CifarSet, source: str | None = None) -> Entry:
    members = tuple(remote for split in dataset.members for remote in dataset.remotes(split))
    return Entry(dataset.name, ((dataset.archive,), members), "cache/*.npz", source or dataset.archive.urls[0])


def _user_files(names: list[str]) -> tuple[Remote, ...]:
    return tuple(Remote(name, ()) for name in names)


ENTRIES = {
    "glyphs": Entry("glyphs", ((),), "glyphs_*.npz", "generated (from the fonts matplotlib ships)"),
    "omniglot": Entry("omniglot", (tuple(omniglot.REMOTES.values()),), "omniglot_*px.npz",
                      omniglot.REMOTES["background"].urls[0].rsplit("/", 1)[0] + "/"),
    "miniimagenet": Entry("miniimagenet", (_user_files([miniimagenet.pickle_name(s) for s in miniimagenet.SPLITS]),
                                           _user_files([f"{s}.csv" for s in miniimagenet.SPLITS])),
                          "cache/*.npz", "user-provided (pickle caches or images/ + Ravi CSVs)"),
    "tieredimagenet": Entry("tieredimagenet", (_user_files([name for s in tieredimagenet.SPLITS
                                                            for name in tieredimagenet.file_names(s)]),),
                            "cache/*.npz", "user-provided (few-shot-ssl release pickles)"),
    "cifar-fs": _cifar(CIFAR100, "derived from cifar100"),
    "fc100": _cifar(CIFAR100, "derived from cifar100"),
    "cifar10": _cifar(CIFAR10),
    "cifar100": _cifar(CIFAR100),
    "mnist": Entry("mnist", (tuple(r for split in mnist.SPLITS for r in mnist.REMOTES[split]),), "cache/*.npz",
                   mnist.SOURCE),
}


def status(root: str | os.PathLike | None = None) -> list[dict]:
    """One row per registered dataset: name, status, size (bytes on disk), source, folder."""
    root = data_root(root)
    rows = []
    for name in DATASETS:
        entry = ENTRIES[name]
        directory = root / entry.folder
        rows.append({"name": name, "status": _state(entry, directory), "size": _size(directory),
                     "source": entry.source, "folder": str(directory)})
    return rows


def fetch(name: str, root: str | os.PathLike | None = None) -> None:
    """Download (where possible), verify and decode every split of ``name``; the clear error where not."""
    module = dataset_module(name)
    for split in module.SPLITS:
        module.load(split, data_root(root), download=True)


def _state(entry: Entry, directory: Path) -> str:
    for remote in {remote for option in entry.options for remote in option}:
        if (directory / remote.filename).exists():
            try:
                _verify(remote, directory / remote.filename)
            except DatasetError:
                return "corrupt"
    if any(directory.glob(entry.caches)):
        return "present"
    if any(all((directory / remote.filename).exists() for remote in option) for option in entry.options):
        return "not decoded"
    return "missing"


def _size(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.rglob("*") if path.is_file()) if directory.exists() else 0


def format_size(size: int) -> str:
    if size < 1000:
        return f"{size} B"
    for unit in ("KB", "MB"):
        size /= 1000
        if size < 1000:
            return f"{size:.1f} {unit}"
    return f"{size / 1000:.1f} GB"


def format_table(rows: list[dict]) -> str:
    table = [("dataset", "status", "size", "source")] + [
        (row["name"], row["status"], format_size(row["size"]), row["source"]) for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(3)]
    return "\n".join(f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}  {d}" for a, b, c, d in table)
