"""`finephrase report DIR`: PNG plots of a run and a short summary beside them (`report.md`).

Plots (matplotlib, Agg backend, written to `--out`, default `DIR/report/`):

- `output_length.png`: distribution of `output_tokens` per prompt (box plots, with the points of small runs);
- `input_vs_output.png`: `input_tokens` against `output_tokens` per row, colored by prompt;
- `rejects.png`: rejects per (prompt, reason) and filtered documents per reason (horizontal bars);
- `compliance.png`: per prompt, the share of generations in format (published) and of each kind of reject;
- `throughput.png`: generated tokens/s over wall-clock time, per task and in total, from the ledgers;
- `occupancy.png`: requests in flight over wall-clock time against --max-concurrency
  (finephrase/monitor/report/occupancy.py).

Everything is read from committed chunks only: the files the ledger lines list (read with pyarrow, only the
needed columns), the ledgers themselves, `manifest.json`, and the per-task progress snapshots (session start
and end times). A run in progress or interrupted is reported as far as it is committed.

The package, by concern:

- data.py: reading the run's folder (RunData, PromptData, load_run, check_is_run);
- timeline.py: sessions, chunk intervals and throughput over time (Timing, timing, binned_rates);
- plots.py, occupancy.py: the PNG files; markdown.py: report.md;
- command.py: the subparser, the entry point and build_report.
"""

# this package is imported by every `finephrase` command (to add its subparser): pyarrow, matplotlib and the run
# machinery are imported only when a report is built
from finephrase.monitor.report.command import add_parser, build_report, main
from finephrase.monitor.report.data import PromptData, RunData, check_is_run, load_run
from finephrase.monitor.report.markdown import write_markdown
from finephrase.monitor.report.occupancy import plot_occupancy
from finephrase.monitor.report.plots import (
                                     DPI,
                                     FIGSIZE,
                                     MAX_TASK_LINES,
                                     PLOTS,
                                     REASON_KINDS,
                                     SCATTER_MAX_POINTS,
                                     STRIP_MAX_POINTS,
                                     plot_compliance,
                                     plot_input_vs_output,
                                     plot_output_length,
                                     plot_rejects,
                                     plot_throughput,
)
from finephrase.monitor.report.timeline import THROUGHPUT_BINS, Timing, binned_rates, timing

__all__ = [
    "DPI", "FIGSIZE", "MAX_TASK_LINES", "PLOTS", "REASON_KINDS", "SCATTER_MAX_POINTS", "STRIP_MAX_POINTS",
    "THROUGHPUT_BINS", "PromptData", "RunData", "Timing", "add_parser", "binned_rates", "build_report",
    "check_is_run", "load_run", "main", "plot_compliance", "plot_input_vs_output", "plot_occupancy",
    "plot_output_length", "plot_rejects", "plot_throughput", "timing", "write_markdown",
]
