"""Graceful stop ("drain"): on SLURM's warning signal (SIGUSR1, sent ahead of the time limit or a preemption)
and on SIGTERM, a task stops taking new documents, lets the requests in flight finish, commits every complete
chunk (the open chunk is closed early) and exits with DRAINED_EXIT_CODE, without marking itself finished; a
rerun (or `scontrol requeue`) resumes after the last commit. A second signal interrupts at once.
"""

from __future__ import annotations

import threading

from finephrase.errors import FinephraseError

DRAIN = threading.Event()
DRAINED_EXIT_CODE = 75  # EX_TEMPFAIL: try again later


class Drained(FinephraseError):
    """The task stopped early on request; what it committed is kept."""
