"""The PNG plots of `finephrase report` (matplotlib, Agg backend; `pyplot` is passed in by build_report): output
length, input vs output tokens, reject reasons, format compliance and throughput over time. `occupancy.png` is
drawn by finephrase/monitor/report/occupancy.py."""

from __future__ import annotations

from pathlib import Path

from finephrase.formatting import plural
from finephrase.monitor.report.data import RunData
from finephrase.monitor.report.timeline import Timing, _iso, binned_rates

PLOTS = {  # file name: (title in report.md, one-line caption)
    "output_length.png": ("Output length per prompt",
                          "Distribution of `output_tokens` of the published rows per prompt"),
    "input_vs_output.png": ("Input vs output tokens", "One point per published row, colored by prompt"),
    "rejects.png": ("Reject reasons", "Rejects per prompt and reason, and filtered documents per reason"),
    "compliance.png": ("Format compliance",
                       "Per prompt: the share of generations that passed the quality gate (in format, published) "
                       "and of each kind of reject (docs/quality.md)"),
    "throughput.png": ("Throughput over time",
                       "Generated tokens/s over wall-clock time from the ledgers: published rows per task and in "
                       "total, and (dashed, if any) the total with the rejected generations"),
    "occupancy.png": ("Requests in flight",
                      "Mean requests in flight over wall-clock time (all tasks), from the ledgers, against "
                      "--max-concurrency: how full the run kept its engine's queue"),
}
FIGSIZE = (8, 5)
DPI = 110
SCATTER_MAX_POINTS = 5000  # per prompt
STRIP_MAX_POINTS = 400  # per prompt: above this the box plot shows no individual points
MAX_TASK_LINES = 8  # more tasks are drawn as thin grey lines without a legend entry


def _colors(names: list[str]) -> dict[str, tuple]:
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {n: cmap(i % cmap.N) for i, n in enumerate(names)}


def _mpl_version() -> tuple[int, int]:
    import matplotlib

    try:
        return tuple(int(x) for x in matplotlib.__version__.split(".")[:2])
    except ValueError:
        return (3, 8)


def _note(plt, path: Path, title: str, text: str):
    fig, ax = plt.subplots(figsize=FIGSIZE)
    ax.set_title(title)
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=14, color="0.35", transform=ax.transAxes, wrap=True)
    ax.set_axis_off()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def _max_tokens(run: RunData) -> int | None:
    return (run.manifest.get("config", {}).get("sampling") or {}).get("max_tokens")


def _shown_max_tokens(run: RunData, longest: int) -> int | None:
    """--max-tokens, to draw as a line, unless it is so far above the longest output that the data would be
    squeezed into a corner (then it is left out)."""
    mt = _max_tokens(run)
    return mt if mt and mt <= 2 * max(longest, 1) else None


def plot_output_length(plt, run: RunData, path: Path, colors):
    import numpy as np

    prompts = list(run.prompts.values())
    if not any(p.rows for p in prompts):
        _note(plt, path, "Output length per prompt", "no published rows yet")
        return
    fig, ax = plt.subplots(figsize=(FIGSIZE[0], min(12, max(FIGSIZE[1], 1.5 + 0.8 * len(prompts)))))
    rng = np.random.default_rng(0)
    # matplotlib >= 3.10 has `orientation` and deprecates `vert`
    horizontal = {"orientation": "horizontal"} if _mpl_version() >= (3, 10) else {"vert": False}
    for i, p in enumerate(prompts):
        y = len(prompts) - i
        if not p.rows:
            ax.text(0.01, y, "no rows", va="center", ha="left", color="0.4", transform=ax.get_yaxis_transform())
            continue
        ax.boxplot([p.output_tokens], positions=[y], **horizontal, widths=0.6, showfliers=p.rows > STRIP_MAX_POINTS,
                   patch_artist=True, medianprops=dict(color="black", linewidth=1.5),
                   boxprops=dict(facecolor=(*colors[p.name][:3], 0.35), edgecolor=colors[p.name]))
        if p.rows <= STRIP_MAX_POINTS:
            ax.scatter(p.output_tokens, y + rng.uniform(-0.18, 0.18, p.rows), s=14, color=colors[p.name],
                       alpha=0.7, zorder=3, linewidths=0)
    ax.set_yticks(range(len(prompts), 0, -1), [f"{p.name}\n{plural(p.rows, 'row')}" for p in prompts])
    ax.set_ylim(0.4, len(prompts) + 0.6)
    mt = _shown_max_tokens(run, max(int(p.output_tokens.max()) for p in prompts if p.rows))
    if mt:
        ax.axvline(mt, color="tab:red", linestyle="--", linewidth=1, label=f"--max-tokens {mt}")
        ax.legend(loc="lower right", fontsize=9)
    ax.set_xlim(left=0)
    ax.set_xlabel("output tokens per row (output_tokens)" + (f"; --max-tokens {_max_tokens(run)}" if _max_tokens(run)
                                                             and not mt else ""))
    ax.set_title("Output length per prompt (box: quartiles and median)")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def plot_input_vs_output(plt, run: RunData, path: Path, colors):
    import numpy as np

    prompts = [p for p in run.prompts.values() if p.rows]
    if not prompts:
        _note(plt, path, "Input vs output tokens", "no published rows yet")
        return
    fig, ax = plt.subplots(figsize=FIGSIZE)
    rng = np.random.default_rng(0)
    sampled = False
    for p in prompts:
        idx = np.arange(p.rows)
        if p.rows > SCATTER_MAX_POINTS:
            idx = rng.choice(p.rows, SCATTER_MAX_POINTS, replace=False)
            sampled = True
        ax.scatter(p.input_tokens[idx], p.output_tokens[idx], s=30 if p.rows <= 100 else 10, alpha=0.6,
                   color=colors[p.name], linewidths=0, label=f"{p.name} ({plural(p.rows, 'row')})")
    mt = _shown_max_tokens(run, max(int(p.output_tokens.max()) for p in prompts))
    if mt:
        ax.axhline(mt, color="tab:red", linestyle="--", linewidth=1, label=f"--max-tokens {mt}")
    ax.set_xlim(0, max(int(p.input_tokens.max()) for p in prompts) * 1.06 + 1)
    ax.set_ylim(0, max([int(p.output_tokens.max()) for p in prompts] + [mt or 0]) * 1.08 + 1)
    ax.set_xlabel("input tokens (prompt + document, as counted by the server)")
    ax.set_ylabel("output tokens" + (f" (--max-tokens {_max_tokens(run)})" if _max_tokens(run) and not mt else ""))
    ax.set_title("Input vs output tokens per row" + (f" ({SCATTER_MAX_POINTS} sampled per prompt)" if sampled else ""))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)  # beside the points
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def plot_rejects(plt, run: RunData, path: Path, colors):
    bars = []  # (label, count, color, share text)
    for p in run.prompts.values():
        pairs = p.rows + sum(p.rejects.values())
        for reason, n in sorted(p.rejects.items(), key=lambda kv: (-kv[1], kv[0])):
            bars.append((f"{p.name}: {reason}", n, colors[p.name], f"{n:,} ({100 * n / pairs:.0f}%)"))
    for reason, n in sorted(run.filtered.items(), key=lambda kv: (-kv[1], kv[0])):
        share = f" ({100 * n / run.documents:.0f}% of documents)" if run.documents else ""
        bars.append((f"filtered: {reason}", n, "0.55", f"{n:,}{share}"))
    if not bars:
        _note(plt, path, "Reject reasons", "no rejects and no filtered documents")
        return
    fig, ax = plt.subplots(figsize=(FIGSIZE[0], min(14, max(FIGSIZE[1], 1.2 + 0.42 * len(bars)))))
    ys = list(range(len(bars), 0, -1))
    ax.barh(ys, [b[1] for b in bars], color=[b[2] for b in bars], height=0.7)
    ax.set_yticks(ys, [b[0] for b in bars])
    top = max(b[1] for b in bars)
    for y, b in zip(ys, bars):
        ax.text(b[1] + top * 0.01, y, b[3], va="center", fontsize=9)
    ax.set_xlim(0, top * 1.35)
    ax.xaxis.get_major_locator().set_params(integer=True)
    total = sum(sum(p.rejects.values()) for p in run.prompts.values())
    ax.set_xlabel("count (in brackets: share of the prompt's documents)")
    ax.set_title(f"Rejects by prompt and reason ({plural(total, 'reject')})"
                 + (f", filtered documents ({sum(run.filtered.values()):,})" if run.filtered else ""))
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


# kinds of reject reasons, in the order they are stacked after "in format"
REASON_KINDS = (("format", "format:", "tab:orange"), ("non-answer", "non_answer:", "tab:red"),
                ("copy / off topic / language", ("copy", "off_topic", "language"), "tab:purple"),
                ("length / other", "", "0.6"))


def _kind_of(reason: str) -> str:
    for name, prefix, _ in REASON_KINDS[:-1]:
        if reason.startswith(prefix):
            return name
    return REASON_KINDS[-1][0]


def plot_compliance(plt, run: RunData, path: Path):
    prompts = [p for p in run.prompts.values() if p.rows + sum(p.rejects.values())]
    if not prompts:
        _note(plt, path, "Format compliance", "no generations yet")
        return
    fig, ax = plt.subplots(figsize=(FIGSIZE[0], max(3.6, 1.2 + 0.5 * len(prompts))))
    ys = list(range(len(prompts), 0, -1))
    shares = [p.rows / (p.rows + sum(p.rejects.values())) for p in prompts]
    ax.barh(ys, shares, color="tab:green", height=0.6, label="in format (published)")
    left = list(shares)
    for name, _, color in REASON_KINDS:
        part = [sum(n for r, n in p.rejects.items() if _kind_of(r) == name) / (p.rows + sum(p.rejects.values()))
                for p in prompts]
        if any(part):
            ax.barh(ys, part, left=left, color=color, height=0.6, label=name)
            left = [a + b for a, b in zip(left, part)]
    for y, s in zip(ys, shares):
        ax.text(0.01, y, f"{s:.0%}", va="center", fontsize=9, color="black")
    ax.set_yticks(ys, [p.name for p in prompts])
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of the prompt's generations")
    ax.set_title("Format compliance: in format vs rejected, by kind of reason")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def _time_unit(span: float) -> tuple[float, str]:
    if span < 180:
        return 1.0, "s"
    if span < 3 * 3600:
        return 60.0, "min"
    return 3600.0, "h"


def plot_throughput(plt, run: RunData, tm: Timing, path: Path):
    import numpy as np

    series = binned_rates(tm)
    if not series or not any(tm.intervals.values()):
        _note(plt, path, "Throughput over time", "not enough timing information\n(no committed chunk with a known "
              "start)" if run.chunks else "no committed chunks yet")
        return
    t_first = tm.first
    scale, unit = _time_unit(tm.periods[-1][1] - t_first)
    fig, ax = plt.subplots(figsize=FIGSIZE)
    ranks = sorted(tm.intervals)
    many = len(ranks) > MAX_TASK_LINES
    cmap = plt.get_cmap("tab10")
    if len(ranks) > 1:
        for k, rank in enumerate(ranks):
            for j, (edges, per_rank, _) in enumerate(series):
                x = (edges - t_first) / scale
                label = (f"task {rank}" if not many else ("tasks" if k == 0 else None)) if j == 0 else None
                ax.stairs(per_rank[rank], x, color="0.6" if many else cmap(k % 10), linewidth=0.8 if many else 1.3,
                          alpha=0.6 if many else 0.9, label=label, zorder=3)
    with_rejected = tm.timed_rejected_tokens > 0
    for j, (edges, per_rank, every) in enumerate(series):
        x = (edges - t_first) / scale
        total = np.sum(list(per_rank.values()), axis=0)
        ax.stairs(total, x, color="black", linewidth=2.4, zorder=2,
                  label=("total" + (" (published rows)" if with_rejected else "")) if j == 0 else None)
        if with_rejected:
            ax.stairs(every, x, color="tab:purple", linewidth=1.4, linestyle="--",
                      label="total incl. rejected\ngenerations" if j == 0 else None)
    all_commits = np.array(sorted(t for ts in tm.commits.values() for t in ts))
    if len(all_commits):
        ax.plot((all_commits - t_first) / scale, np.zeros(len(all_commits)), "|", color="tab:blue", ms=10, mew=1,
                label="chunk commits", clip_on=False, zorder=4)
    for k, t in enumerate(sorted(set(tm.session_starts))):
        ax.axvline((t - t_first) / scale, color="tab:red", linestyle=":", linewidth=1.2,
                   label="resumed (new session)" if k == 0 else None)
    for a, b in zip(tm.periods, tm.periods[1:]):  # idle between sessions
        ax.axvspan((a[1] - t_first) / scale, (b[0] - t_first) / scale, color="0.9", zorder=0)
    lifetime = tm.lifetime
    ax.axhline(lifetime, color="tab:green", linestyle="-.", linewidth=1,
               label=f"lifetime mean\n{lifetime:,.1f} tok/s" + (" (published)" if with_rejected else ""))
    ax.set_ylim(bottom=0)
    ax.set_xlim(0, (tm.periods[-1][1] - t_first) / scale)
    ax.set_xlabel(f"wall-clock time since {_iso(t_first)} ({unit})")
    ax.set_ylabel("generated tokens / s")
    ax.set_title(f"Throughput over time ({plural(len(ranks), 'task')}, {plural(run.chunks, 'chunk')})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
