"""`finephrase status DIR`: where a run stands, per task and in total, while it runs and after.

It only reads files in DIR (and, for exact totals, the parquet footers of the run's inputs), so it works from
any machine that sees the output folder, e.g. a SLURM login node while the tasks run on compute nodes:

- `DIR/manifest.json`: the run's settings (inputs, prompts, tasks) and its sessions (`gpus_per_task`);
- `DIR/.ledger/rank_RRRRR.jsonl`: the committed chunks (documents, rows, rejects, filtered, tokens, commit time)
  and whether the task finished; every count shown comes from here, so it matches the parquet files;
- `DIR/.ledger/rank_RRRRR.progress.json`: the task's snapshot (state, sessions with start and end times, ETA,
  estimated total), rewritten every few seconds while the task works.

Numbers (see docs/monitoring.md):

- documents done: committed documents (bad and filtered ones included); total: the row count of the task's
  parquet inputs from their footers with `--limit` applied per task (exact), the documents read by a finished
  task (exact), else the snapshot's extrapolation from the input fraction read (estimate);
- output tokens/s, lifetime: committed output tokens / seconds the task's sessions were active; recent: output
  tokens committed in the last N minutes / N minutes (up to now while running, up to the last commit otherwise);
- GPU-hours: sum over the tasks' sessions of duration x gpus_per_task (a running session counts until now, a

The package, by concern:

- what kind of folder DIR is (folder_kind, describe_folder, refuse_folder) and its manifest (load_manifest) are
  finephrase/store/folders.py's, shared with verify, report, card, dedup (re-exported here);
- data.py: the other files read (progress snapshots, the inputs' parquet footers for exact totals);
- task.py: one task's numbers and state; summary.py: the whole run (collect) and a dedup output (dedup_summary);
- rendering.py: the text (render, render_dedup); command.py: the subparser and the entry point.
"""

from finephrase.monitor.status.command import add_parser, main
from finephrase.monitor.status.data import input_totals
from finephrase.monitor.status.rendering import MAX_TASK_LINES, render, render_dedup
from finephrase.monitor.status.summary import DEFAULT_RECENT_MINUTES, collect, dedup_summary
from finephrase.monitor.status.task import STALE_AFTER_S, STATES
from finephrase.store.folders import KINDS, MIX_FILE, describe_folder, folder_kind, load_manifest, refuse_folder

__all__ = [
    "DEFAULT_RECENT_MINUTES", "KINDS", "MAX_TASK_LINES", "MIX_FILE", "STALE_AFTER_S", "STATES", "add_parser",
    "collect", "dedup_summary", "describe_folder", "folder_kind", "input_totals", "load_manifest", "main",
    "refuse_folder", "render", "render_dedup",
]
