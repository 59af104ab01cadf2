"""The `finephrase` command line: `main.py` (the parser, signals, one-line errors and exit codes) and
`commands/` (the commands that have no feature package of their own: rephrase, prompts, verify). Every other
command's parser lives in its feature package (`dedup/command.py`, `monitor/status/command.py`, ...)."""

from finephrase.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
