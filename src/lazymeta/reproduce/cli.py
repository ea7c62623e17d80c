"""``lazymeta reproduce NAME --scale smoke|cpu|paper``: run one table or figure of the paper and report it."""
from __future__ import annotations

import argparse

COMMANDS = {"reproduce": "run the grid of one table or figure of the paper and write its report"}


def add_parser(subparsers: argparse._SubParsersAction, command: str = "reproduce") -> None:
    from lazymeta.reproduce.entries import ENTRIES
    from lazymeta.reproduce.spec import SCALES

    p = subparsers.add_parser(command, help=COMMANDS[command],
                              description="Entries: " + "; ".join(f"{e.name} ({e.title})" for e in ENTRIES.values()))
    p.add_argument("name", choices=list(ENTRIES), help="the table or figure")
    p.add_argument("--scale", choices=SCALES, default="cpu",
                   help="smoke: seconds, numbers meaningless; cpu: about an hour on 2 cores; paper: the paper's "
                        "setting (a GPU)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per cell (default 3)")
    p.add_argument("--data-root", help="dataset directory (else $LAZYMETA_DATA, else ~/.cache/lazymeta)")
    p.add_argument("--out", help="directory of the runs and the report (default: runs/reproduce/<name>-<scale>)")
    p.add_argument("--jobs", type=int, help="runs at a time, one op thread each (default: the CPU count; 1 runs "
                                            "them in this process)")
    p.add_argument("--report-only", action="store_true",
                   help="start no run: write the report from the runs that have finished (e.g. of a stopped reproduction)")
    p.add_argument("--only", metavar="TEXT",
                   help="run only the runs whose key (e.g. mnist-targeted/meta/s0) contains TEXT; the report covers "
                        "every finished run, so processes given disjoint --only share one --out")
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lazymeta.reproduce.entries import reproduce

    out = Path(args.out or f"runs/reproduce/{args.name}-{args.scale}")
    report = reproduce(args.name, args.scale, args.seeds, args.data_root, out, args.jobs, progress=not args.quiet,
                       report_only=args.report_only, only=args.only)
    print((out / "report.md").read_text(), end="")
    return 0 if report else 1
