"""What `lazymeta data list` and `lazymeta data fetch NAME` show and do: each dataset's state on this machine.

A dataset is ``present`` (decoded cache there), ``not decoded`` (originals there and verified, not yet
decoded), ``corrupt`` (an original fails its size or checksum) or ``missing``.
"""
from __future__ import annotations

import argparse
import os
import sys
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
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def format_table(rows: list[dict]) -> str:
    table = [("dataset", "status", "size", "source")] + [
        (row["name"], row["status"], format_size(row["size"]), row["source"]) for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(3)]
    return "\n".join(f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}  {d}" for a, b, c, d in table)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """The ``data`` sub-command: ``data list`` and ``data fetch NAME``."""
    parser = subparsers.add_parser("data", help="list the datasets and their state here, or download one")
    commands = parser.add_subparsers(dest="data_command", required=True)
    for command, text in (("list", "each dataset's status, size on disk and source"),
                          ("fetch", "download, verify and decode one dataset")):
        sub = commands.add_parser(command, help=text)
        if command == "fetch":
            sub.add_argument("name", choices=list(DATASETS))
        sub.add_argument("--data-root", help="dataset directory (else $LAZYMETA_DATA, else ~/.cache/lazymeta)")


def run(args: argparse.Namespace) -> int:
    root = data_root(args.data_root)
    if args.data_command == "list":
        print(f"data root: {root}")
        print(format_table(status(root)))
        return 0
    try:
        fetch(args.name, root)
    except DatasetError as error:
        print(f"lazymeta data fetch: error: {error}", file=sys.stderr)
        return 1
    print(f"{args.name} is ready in {root}")
    return 0
