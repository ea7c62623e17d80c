"""The ``lazymeta`` command line: a table of applications, each a module with ``COMMANDS`` (name -> help),
``add_parser(subparsers, command)`` and ``run(args) -> exit code``. Only the chosen command's module builds
its full parser (and loads torch), so ``lazymeta --help`` and ``--version`` answer at once."""
from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from lazymeta._version import __version__

APPLICATIONS = (
    "lazymeta.fewshot.cli",
    "lazymeta.longtail.cli",
    "lazymeta.attack.cli",
    "lazymeta.data.cli",
    "lazymeta.reproduce.cli",
)


def _commands() -> dict[str, object]:
    """command -> its application's cli module (light modules: they import their heavy parts when run)."""
    table = {}
    for name in APPLICATIONS:
        module = importlib.import_module(name)
        table.update({command: module for command in module.COMMANDS})
    return table


def parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser, complete for ``command`` (the others only named, with their one-line help)."""
    p = argparse.ArgumentParser(prog="lazymeta", description="Long-horizon gradient-based meta-learning: "
                                "few-shot training and evaluation, long-tailed reweighting, meta-attacks, datasets.")
    p.add_argument("--version", action="version", version=f"lazymeta {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in _commands().items():
        if name == command:
            module.add_parser(sub, name)
        else:
            sub.add_parser(name, help=module.COMMANDS[name])
    return p


def _format_warning(message, category, filename, lineno, line=None) -> str:
    return f"lazymeta: warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    commands = _commands()
    command = next((a for a in argv if not a.startswith("-")), None)
    args = parser(command if command in commands else None).parse_args(argv)
    from lazymeta.infra.errors import LazymetaError
    from lazymeta.infra.interrupt import EXIT_CODE, Interrupted

    warnings.formatwarning = _format_warning
    name = " ".join(a for a in (args.command, getattr(args, "attack_command", None),
                                getattr(args, "data_command", None)) if a)
    try:
        return commands[args.command].run(args)
    except Interrupted as stop:
        print(f"lazymeta {name}: {stop}", file=sys.stderr)
        return EXIT_CODE
    except (LazymetaError, ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"lazymeta {name}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
