"""`finephrase gate DIR`: re-check a run's published rows with the current quality gate (the templates' current
`[check]` tables and thresholds) and print what would now be rejected, per prompt and reason. Nothing is
rewritten: it shows what tightening the gate would cost before you filter or rerun.

The copy and off-topic checks compare with the source documents, read again from the run's inputs (ids and
text); when the inputs cannot be read, or with --no-source, those two checks are skipped and it says so.

- plan.py: the folder and its units of work (run tasks; files without ledger ranges);
- stream.py: checking one unit, chunk by chunk (memory bounded by a chunk);
- tally.py: what a check found, mergeable in any order (same report as one process);
- core.py: units in this process or in --workers processes; the report;
- parts.py: the array form's parts (DIR/.gate/) and --merge; command.py: the command.
"""

from finephrase.quality.recheck.command import add_parser, main  # noqa: F401
from finephrase.quality.recheck.core import recheck  # noqa: F401
