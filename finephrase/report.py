"""`finephrase report` (being built)."""

from finephrase.errors import UsageError


def add_parser(sub):
    p = sub.add_parser("report", help="(not built yet)")
    p.set_defaults(func=main)


def main(args) -> int:
    raise UsageError("finephrase report is not built yet")
