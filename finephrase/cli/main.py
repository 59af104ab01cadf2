"""The `finephrase` command: its parser (each command's own lives in its module), signals (drain on SIGTERM /
SIGUSR1) and errors (one line and an exit code, no traceback)."""

from __future__ import annotations

import argparse
import os
import sys

from finephrase import __version__
from finephrase.process.drain import drain_on_signals
from finephrase.process.exits import USAGE_EXIT_CODE, ending


class Parser(argparse.ArgumentParser):
    """Every finephrase parser: no abbreviations (`--prompts` is not `--prompts-dir`), and a usage error is one
    line with a pointer to --help instead of the whole usage block."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    from finephrase.cli.commands import prompts, rephrase, verify

    parser = Parser(
        prog="finephrase",
        description="Rephrase web documents into structured pretraining data (FAQ, math, table, tutorial, ...) "
        "with small instruction LLMs, exactly once.",
        epilog=rephrase.EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"finephrase {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    # each module's add_parser(sub) adds its command and sets `func`; this order is the order of `--help`
    from finephrase import card, decontam, dedup, mix, publish, score, sweep
    from finephrase.compact import command as compact
    from finephrase.monitor import cost_plan as plan
    from finephrase.monitor import report, status
    from finephrase.project import scaffold as project
    from finephrase.quality import recheck
    from finephrase.serving import models

    for module in (rephrase, prompts, verify, status, plan, report, models, sweep, recheck, dedup, decontam, score,
                   mix, compact, card, publish, project):
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return USAGE_EXIT_CODE

    drain_on_signals()  # SIGTERM / SIGUSR1: drain; a second one stops at once
    from finephrase.process.console import setup_console_logging

    setup_console_logging()
    try:
        return args.func(args)
    except BrokenPipeError:  # `finephrase status DIR --watch | head`: the reader left
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except BaseException as e:  # one line and an exit code (process/exits.py); a task's traceback is in its log
        rephrase = args.command == "rephrase"
        end = ending(e, "committed chunks are kept; rerun the same command to resume" if rephrase
                     else f"rerun `finephrase {args.command} ...` to start again or resume",
                     f"{args.output}/logs/logs" if rephrase else None)
        if end is None:
            raise
        print(end[0], file=sys.stderr)
        return end[1]


if __name__ == "__main__":
    sys.exit(main())
