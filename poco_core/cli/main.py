"""The `poco` command: one subcommand module per GUI action (see poco_core/commands/)."""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from poco_core.base.allocator import keep_freed_memory
from poco_core.base.errors import PocoError

# Each module defines `register(subparsers)` which adds its parser and sets `func(args) -> int`.
COMMAND_MODULES = ("info", "simulate", "train", "evaluate", "finetune", "forecast", "embed", "live", "extract", "circuit")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="poco", description="POCO Studio: forecast neural activity.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"poco_core.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    keep_freed_memory()
    try:
        return int(args.func(args) or 0)
    except PocoError as exc:
        print(f"poco {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `poco info x --json | head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # a disk or permission failure the command did not foresee: name the path
        from poco_core.base.outputs import disk_error

        where = exc.filename or "a file"
        print(f"poco {args.command}: error: {disk_error(where, exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"poco {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
