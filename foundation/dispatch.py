"""Sub-command dispatch shared by ``qwen-data`` and ``qwen-bench``.

Each sub-command is a module with ``add_arguments(parser)`` and ``run(args) -> int``. Modules are
imported only when their command runs, so ``--help`` stays fast and a tool never pays for torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Mapping, Sequence


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def run_subcommand(prog: str, description: str, commands: Mapping[str, tuple[str, str]],
                   argv: Sequence[str] | None = None) -> int:
    """``commands`` maps a name to (module path, one-line help)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog=prog, description=description)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in commands.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not argv or argv[0] not in commands:
        parser.print_help(sys.stderr if argv else sys.stdout)
        if argv and argv[0] not in ("-h", "--help"):
            print(f"{prog}: error: unknown command {argv[0]!r}", file=sys.stderr)
            return 2
        return 0 if argv else 2
    name = argv[0]
    module = importlib.import_module(commands[name][0])
    command_parser = argparse.ArgumentParser(prog=f"{prog} {name}", description=commands[name][1])
    module.add_arguments(command_parser)
    args = command_parser.parse_args(argv[1:])
    return int(module.run(args) or 0)
