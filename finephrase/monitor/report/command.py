"""`finephrase report DIR`: the command (its subparser and entry point) and build_report, which writes the plots
and report.md."""

from __future__ import annotations

from pathlib import Path

from finephrase.errors import UsageError
from finephrase.monitor.report.data import check_is_run, load_run
from finephrase.monitor.report.markdown import write_markdown
from finephrase.monitor.report.occupancy import plot_occupancy
from finephrase.monitor.report.plots import (
    PLOTS,
    _colors,
    _note,
    plot_compliance,
    plot_input_vs_output,
    plot_output_length,
    plot_rejects,
    plot_throughput,
)
from finephrase.monitor.report.scores import PNG, plot_scores, scores_lines
from finephrase.monitor.report.timeline import timing
from finephrase.scoring.stats import read_scores


def add_parser(sub):
    p = sub.add_parser(
        "report", help="PNG plots and a summary (report.md) of a run",
        description="Plot a run: output length per prompt, input vs output tokens, reject reasons, and throughput "
        "over time (PNG files), with a short summary in report.md that embeds them. Reads only committed chunks.")
    p.add_argument("run_dir", metavar="DIR", help="the run's output folder")
    p.add_argument("--out", metavar="FOLDER", help="where to write the PNG files and report.md (default: DIR/report/)")
    p.add_argument("--scores", metavar="SCORES_DIR", help="a `finephrase score` output of these rows: scores.png "
                   "(rephrased rows against their source documents) and its table")
    p.set_defaults(func=main)


def main(args) -> int:
    scores = read_scores(args.scores) if getattr(args, "scores", None) else None
    md = build_report(args.run_dir, args.out, scores)
    pngs = sorted(p.name for p in md.parent.glob("*.png") if p.name in PLOTS or p.name == PNG)
    print(f"report: {md} ({len(pngs)} plots: {', '.join(pngs)})")
    return 0


def _import_pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("finephrase report needs matplotlib: pip install 'finephrase[report]'") from None
    return plt


def build_report(run_dir: str | Path, out: str | Path | None = None, scores: dict | None = None) -> Path:
    """Write the PNG plots and report.md of the run in `run_dir` to `out` (default `run_dir/report/`); `scores`: a
    `finephrase score` summary (scores.json) to plot too."""
    root = Path(run_dir)
    check_is_run(root)
    plt = _import_pyplot()
    run = load_run(root)
    if out is None:
        out = root / ("report" if "report" not in run.prompts else "report-plots")  # not into a prompt's folder
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    tm = timing(run)
    colors = _colors(list(run.prompts))
    notes = {}
    empty = [p.name for p in run.prompts.values() if not p.rows]
    if empty:
        notes["output_length.png"] = f"No rows for {', '.join(empty)}."
    if not any(p.rejects for p in run.prompts.values()) and not run.filtered:
        notes["rejects.png"] = "No rejects and no filtered documents in this run: the plot only says so."
    if len(tm.periods) > 1:
        notes["throughput.png"] = (f"{len(tm.periods)} periods of activity; the grey bands are the idle time "
                                   f"between sessions, dotted red lines mark resumptions.")
    elif run.chunks == 1:
        notes["throughput.png"] = "A single chunk: one flat step over its duration."
    plot_output_length(plt, run, out / "output_length.png", colors)
    plot_input_vs_output(plt, run, out / "input_vs_output.png", colors)
    plot_rejects(plt, run, out / "rejects.png", colors)
    plot_compliance(plt, run, out / "compliance.png")
    plot_throughput(plt, run, tm, out / "throughput.png")
    plot_occupancy(plt, run, tm, out / "occupancy.png", _note)
    if scores:
        plot_scores(plt, scores, out / PNG)
    return write_markdown(run, tm, out, notes, scores_lines(scores) if scores else [])
