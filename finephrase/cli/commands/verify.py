"""`finephrase verify DIR`: exactly one row or reject per (document, prompt)? (finephrase/verify/)"""

from __future__ import annotations

from finephrase.argtypes import positive_int


def add_parser(sub):
    p = sub.add_parser("verify", help="check that a run holds exactly one row or reject per (document, prompt)",
                       description="Re-read the run's inputs (ids only) and check OUTPUT against them, task by task "
                       "and chunk by chunk: every (document, prompt) must have exactly one row in OUTPUT/<prompt>/ or "
                       "OUTPUT/rejects/<prompt>/ unless the document was filtered. Each task's verdict is recorded in "
                       "OUTPUT/.verify/ and reused while the task's files are unchanged. Exit 0 if so, 1 with a "
                       "report otherwise.")
    p.add_argument("output", metavar="DIR")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--rank", default=None, metavar="R",
                   help="check only the run's tasks R, R+N, R+2N, ... (with --tasks N) and record their verdicts: one "
                   "share of an array job; `auto`: R (and N unless given) from the SLURM array")
    p.add_argument("--tasks", type=positive_int, default=None, metavar="N", help="how many shares (with --rank)")
    p.add_argument("--workers", type=positive_int, default=1, metavar="K",
                   help="check tasks in K processes on this machine (default 1)")
    p.add_argument("--fresh", action="store_true", help="check every task again, ignoring recorded verdicts")
    p.set_defaults(func=main)


def main(args) -> int:
    from finephrase.verify import main as verify_main

    return verify_main(args)
