"""``lazymeta data list`` and ``lazymeta data fetch NAME``: the datasets' state on this machine, and downloads."""
from __future__ import annotations

import argparse
import sys

COMMANDS = {"data": "list the datasets and their state here, or download one"}


def add_parser(subparsers: argparse._SubParsersAction, command: str = "data") -> None:
    from lazymeta.data import DATASETS

    parser = subparsers.add_parser(command, help=COMMANDS[command])
    commands = parser.add_subparsers(dest="data_command", required=True)
    for name, text in (("list", "each dataset's status, size on disk and source"),
                       ("fetch", "download, verify and decode one dataset")):
        sub = commands.add_parser(name, help=text)
        if name == "fetch":
            sub.add_argument("name", choices=list(DATASETS))
        sub.add_argument("--data-root", help="dataset directory (else $LAZYMETA_DATA, else ~/.cache/lazymeta)")


def run(args: argparse.Namespace) -> int:
    """0 when listed or fetched; 1 when a dataset cannot be fetched (the error says what to put where)."""
    from lazymeta.data import data_root
    from lazymeta.data.catalog import fetch, format_table, status
    from lazymeta.data.download import DatasetError

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
