"""`finephrase verify DIR`: exactly one row or reject per (document, prompt)? (finephrase/verify.py)"""

from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser("verify", help="check that a run holds exactly one row or reject per (document, prompt)",
                       description="Re-read the run's inputs (ids only) and check OUTPUT against them: every "
                       "(document, prompt) must have exactly one row in OUTPUT/<prompt>/ or OUTPUT/rejects/<prompt>/ "
                       "unless the document was filtered. Exit 0 if so, 1 with a report otherwise.")
    p.add_argument("output", metavar="DIR")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=main)


def main(args) -> int:
    from finephrase.verify import main as verify_main

    return verify_main(args)
