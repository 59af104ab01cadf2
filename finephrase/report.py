"""`finephrase report DIR`: PNG plots of a run and a short summary beside them (`report.md`).

Plots (matplotlib, Agg backend, written to `--out`, default `DIR/report/`):

- `output_length.png`: distribution of `output_tokens` per prompt (box plots, with the points of small runs);
- `input_vs_output.png`: `input_tokens` against `output_tokens` per row, colored by prompt;
- `rejects.png`: rejects per (prompt, reason) and filtered documents per reason (horizontal bars);
- `compliance.png`: per prompt, the share of generations in format (published) and of each kind of reject;
- `throughput.png`: generated tokens/s over wall-clock time, per task and in total, from the ledgers;
- `occupancy.png`: requests in flight over wall-clock time against --max-concurrency (finephrase/report_occupancy.py).

Everything is read from committed chunks only: the files the ledger lines list (read with pyarrow, only the
needed columns), the ledgers themselves, `manifest.json`, and the per-task progress snapshots (session start
and end times). A run in progress or interrupted is reported as far as it is committed.
"""

from __future__ import annotations

import calendar
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from finephrase.errors import UsageError
from finephrase.formatting import duration_decimal
from finephrase.layout import MANIFEST
from finephrase.report_occupancy import plot_occupancy

# this module is imported by every `finephrase` command (to add its subparser): pyarrow, matplotlib and the run
# machinery are imported only when a report is built
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
THROUGHPUT_BINS = 60
MAX_TASK_LINES = 8  # more tasks are drawn as thin grey lines without a legend entry


def add_parser(sub):
    p = sub.add_parser(
        "report", help="PNG plots and a summary (report.md) of a run",
        description="Plot a run: output length per prompt, input vs output tokens, reject reasons, and throughput "
        "over time (PNG files), with a short summary in report.md that embeds them. Reads only committed chunks.")
    p.add_argument("run_dir", metavar="DIR", help="the run's output folder")
    p.add_argument("--out", metavar="FOLDER", help="where to write the PNG files and report.md (default: DIR/report/)")
    p.set_defaults(func=main)


def main(args) -> int:
    md = build_report(args.run_dir, args.out)
    pngs = sorted(p.name for p in md.parent.glob("*.png") if p.name in PLOTS)
    print(f"report: {md} ({len(pngs)} plots: {', '.join(pngs)})")
    return 0


# -- reading a run --------------------------------------------------------------------------------------------


def check_is_run(root: Path) -> None:
    """A one-line UsageError unless `root` is a rephrase run: a dedup output (no ledgers, its rows already
    plotted from the run it came from), a mix or any other folder is named and pointed to what reads it."""
    from finephrase.status import folder_kind, refuse_folder

    if not root.is_dir():
        raise UsageError(f"{root} is not a finephrase run ({'not a folder' if root.exists() else 'it does not exist'})")
    kind = folder_kind(root)
    if kind != "run":
        raise refuse_folder(root, kind, "report")


@dataclass
class PromptData:
    name: str
    hash: str
    input_tokens: list = field(default_factory=list)  # numpy arrays, aligned per row
    output_tokens: list = field(default_factory=list)
    rejects: Counter = field(default_factory=Counter)  # reason -> count

    @property
    def rows(self) -> int:
        return len(self.output_tokens)


@dataclass
class RunData:
    root: Path
    manifest: dict
    prompts: dict[str, PromptData]
    filtered: Counter
    ledgers: dict
    documents: int
    chunks: int
    ledger_rows: Counter
    ledger_rejects: Counter
    ledger_output_tokens: int
    problems: list[str]
    rejected_tokens: dict  # relative path of a rejects file -> output tokens of its rejected generations


def _iso_to_epoch(s: str | None) -> float | None:
    if not s:
        return None
    try:
        return float(calendar.timegm(time.strptime(s, "%Y-%m-%dT%H:%M:%SZ")))
    except (TypeError, ValueError):
        return None


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


def load_run(run_dir: str | Path) -> RunData:
    import numpy as np
    import orjson
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from finephrase.ledger import all_ledgers

    root = Path(run_dir)
    check_is_run(root)
    try:
        manifest = orjson.loads((root / MANIFEST).read_bytes())
        prompt_hashes = dict(manifest["config"]["prompts"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        raise UsageError(f"{root / MANIFEST} is not a readable finephrase manifest") from None
    ledgers = all_ledgers(root)
    prompts = {name: PromptData(name, h) for name, h in prompt_hashes.items()}
    files: dict[str, list[Path]] = {}  # relative folder -> committed files
    documents = chunks = ledger_output_tokens = 0
    ledger_rows, ledger_rejects = Counter(), Counter()
    for rank in sorted(ledgers):
        for e in ledgers[rank].entries:
            chunks += 1
            documents += e.get("docs", 0)
            ledger_output_tokens += e.get("output_tokens", 0)
            ledger_rows.update(e.get("rows", {}))
            ledger_rejects.update(e.get("rejects", {}))
            for rel in e.get("files", []):
                folder, _, _ = rel.rpartition("/")
                files.setdefault(folder, []).append(root / rel)
    problems = []

    rejected_tokens = {}

    def read(folder: str, columns: list[str]):
        paths = files.get(folder, [])
        present = [p for p in paths if p.is_file()]
        if len(present) < len(paths):
            problems.append(f"{len(paths) - len(present)} committed file(s) in {folder}/ are missing "
                            f"(run `finephrase verify {root}`)")
        if not present:
            return None
        tables = []
        for p in present:
            tables.append(pq.read_table(p, columns=columns))
            if folder.startswith("rejects/"):
                rejected_tokens[f"{folder}/{p.name}"] = int(pc.sum(tables[-1]["output_tokens"]).as_py() or 0)
        return pa.concat_tables(tables)

    for name, pd in prompts.items():
        t = read(name, ["input_tokens", "output_tokens"])
        if t is not None:
            pd.input_tokens = t["input_tokens"].fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
            pd.output_tokens = t["output_tokens"].fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        else:
            pd.input_tokens = np.zeros(0, dtype=np.int64)
            pd.output_tokens = np.zeros(0, dtype=np.int64)
        t = read(f"rejects/{name}", ["reject_reason", "output_tokens"])
        if t is not None:
            pd.rejects = _value_counts(t["reject_reason"])
    t = read("filtered", ["filter_reason"])
    filtered = _value_counts(t["filter_reason"]) if t is not None else Counter()

    file_rows = Counter({n: p.rows for n, p in prompts.items() if p.rows})
    file_rejects = Counter({f"{n}/{r}": c for n, p in prompts.items() for r, c in p.rejects.items()})
    if +ledger_rows != file_rows or +ledger_rejects != file_rejects:
        problems.append("the counts in the parquet files differ from the ledgers' counts "
                        f"(run `finephrase verify {root}`); the tables below count the files")
    return RunData(root, manifest, prompts, filtered, ledgers, documents, chunks, ledger_rows, ledger_rejects,
                   ledger_output_tokens, problems, rejected_tokens)


def _value_counts(col) -> Counter:
    import pyarrow.compute as pc

    out = Counter()
    for item in pc.value_counts(col.fill_null("(null)")).to_pylist():
        out[item["values"]] += item["counts"]
    return out


# -- timing: sessions, chunk intervals, throughput ---------------------------------------------------------------


@dataclass
class Timing:
    # rank -> per chunk (start, commit, output tokens of its rows, output tokens of its rejected generations)
    intervals: dict[int, list[tuple[float, float, int, int]]]
    untimed_tokens: int  # tokens of chunks whose start is unknown (no session information)
    commits: dict[int, list[float]]
    periods: list[tuple[float, float]]  # merged spans when at least one task was running
    sessions: int  # most sessions of one task
    session_starts: list[float]  # starts of second and later sessions (resumptions), all tasks
    rank_active: dict[int, float] = field(default_factory=dict)  # rank -> seconds its sessions lasted

    @property
    def active_s(self) -> float:
        return sum(b - a for a, b in self.periods)

    @property
    def timed_tokens(self) -> int:
        return sum(iv[2] for ivs in self.intervals.values() for iv in ivs)

    @property
    def timed_rejected_tokens(self) -> int:
        return sum(iv[3] for ivs in self.intervals.values() for iv in ivs)

    @property
    def lifetime(self) -> float:
        return self.timed_tokens / self.active_s if self.active_s > 0 else 0.0

    @property
    def first(self) -> float | None:
        return self.periods[0][0] if self.periods else None

    @property
    def idle_s(self) -> float:
        return (self.periods[-1][1] - self.periods[0][0] - self.active_s) if self.periods else 0.0


def _rank_sessions(root: Path, rank: int, manifest: dict, commits: list[float]) -> list[list[float | None]]:
    """[start, end] of each session of a task: from its progress snapshot, else from the manifest's sessions."""
    import orjson

    from finephrase.ledger import LEDGER_DIR

    spans: list[list[float | None]] = []
    snap = root / LEDGER_DIR / f"rank_{rank:05d}.progress.json"
    if snap.is_file():
        try:
            data = orjson.loads(snap.read_bytes())
            sessions = [s for s in data.get("sessions", []) if s.get("started_at")]
            for i, s in enumerate(sessions):
                end = s.get("ended_at")
                if end is None and i == len(sessions) - 1:
                    end = data.get("updated_at")
                spans.append([float(s["started_at"]), float(end) if end else None])
        except (OSError, orjson.JSONDecodeError, TypeError, ValueError):
            spans = []
    if not spans:  # older runs: the manifest's sessions (whole command, 1 s resolution)
        starts = [t for t in (_iso_to_epoch(s.get("started_at")) for s in manifest.get("sessions", [])) if t]
        if not starts and _iso_to_epoch(manifest.get("created_at")):  # oldest manifests: no sessions
            starts = [_iso_to_epoch(manifest["created_at"])]
        spans = [[t, None] for t in sorted(starts)]
        updated = _iso_to_epoch(manifest.get("updated_at"))
        if spans and updated and updated >= spans[-1][0]:
            spans[-1][1] = updated
    spans.sort(key=lambda s: s[0])
    for i, span in enumerate(spans):  # an open end: the last commit of the session; and cover every commit
        nxt = spans[i + 1][0] if i + 1 < len(spans) else math.inf
        inside = [c for c in commits if span[0] <= c < nxt]
        last = max(inside) if inside else span[0]
        span[1] = max(span[1] if span[1] is not None else last, last)
        if i + 1 < len(spans):
            span[1] = min(span[1], nxt)
    return spans


def _smooth(intervals: list[tuple], spans: list) -> list[tuple]:
    """Chunks are committed in order, so a chunk that completed while an earlier one was still open is committed
    right after it: a burst of commits a moment apart, which taken literally is a spike of tokens/s. Such a
    chunk was in flight alongside the earlier ones: spread it over the task's typical chunk duration instead
    (the median time between commits), not before the start of its session."""
    import statistics

    gaps = [t1 - t0 for t0, t1, *_ in intervals if t1 > t0]
    if len(gaps) < 3:
        return intervals
    typical = statistics.median(gaps)
    out = []
    for t0, t1, *rest in intervals:
        if t1 - t0 < typical:
            start = max((s[0] for s in spans if s[0] <= t1), default=t0)
            t0 = max(min(t0, t1 - typical), start)
        out.append((t0, t1, *rest))
    return out


def timing(run: RunData) -> Timing:
    intervals, commits, all_spans, untimed = {}, {}, [], 0
    sessions, resumptions, rank_active = 0, [], {}
    for rank, state in sorted(run.ledgers.items()):
        entries = sorted(state.entries, key=lambda e: e.get("committed_at", 0))
        times = [float(e["committed_at"]) for e in entries if e.get("committed_at")]
        spans = _rank_sessions(run.root, rank, run.manifest, times)
        sessions = max(sessions, len(spans))
        resumptions += [s[0] for s in spans[1:]]
        all_spans += [(s[0], s[1]) for s in spans]
        commits[rank] = times
        out, prev = [], None
        for e in entries:
            t1, tok = e.get("committed_at"), int(e.get("output_tokens", 0))
            rejected = sum(run.rejected_tokens.get(f, 0) for f in e.get("files", []))
            if not t1:
                untimed += tok
                continue
            start = max((s[0] for s in spans if s[0] <= t1), default=None)
            t0 = prev if prev is not None and (start is None or prev >= start) else start
            if t0 is None:
                untimed += tok
            else:
                out.append((t0, float(t1), tok, rejected))
            prev = float(t1)
        intervals[rank] = _smooth(out, spans)
        if not spans and out:
            all_spans.append((out[0][0], out[-1][1]))
        rank_active[rank] = sum(b - a for a, b in spans) if spans else (out[-1][1] - out[0][0] if out else 0.0)
    periods = []
    for a, b in sorted(all_spans):
        if periods and a <= periods[-1][1]:
            periods[-1] = (periods[-1][0], max(periods[-1][1], b))
        else:
            periods.append((a, b))
    return Timing(intervals, untimed, commits, periods, sessions, sorted(resumptions), rank_active)


def _spread(intervals, edges, key):
    """Tokens per bin: each chunk's tokens (`key(interval)`) spread evenly over its interval."""
    import numpy as np

    n = len(edges) - 1
    tokens = np.zeros(n)
    for iv in intervals:
        t0, t1, tok = iv[0], iv[1], key(iv)
        if not tok or t1 < edges[0] or t0 > edges[-1]:
            continue
        if t1 > t0:
            overlap = np.clip(np.minimum(t1, edges[1:]) - np.maximum(t0, edges[:-1]), 0, None)
            tokens += tok * overlap / (t1 - t0)
        else:
            tokens[min(np.searchsorted(edges, t1, side="right") - 1, n - 1)] += tok
    return tokens


def binned_rates(tm: Timing):
    """Per period of activity: bin edges, tokens/s of published rows per rank in each bin, and tokens/s of all
    generations (rows and rejected generations) of all ranks."""
    import numpy as np

    active = tm.active_s
    if active <= 0:
        return []
    width = active / THROUGHPUT_BINS
    every = [iv for ivs in tm.intervals.values() for iv in ivs]
    out = []
    for a, b in tm.periods:
        n = max(1, math.ceil((b - a) / width - 1e-9)) if b > a else 1
        edges = np.linspace(a, b if b > a else a + width, n + 1)
        widths = np.diff(edges)
        per_rank = {rank: _spread(ivs, edges, lambda iv: iv[2]) / widths for rank, ivs in tm.intervals.items()}
        out.append((edges, per_rank, _spread(every, edges, lambda iv: iv[2] + iv[3]) / widths))
    return out


# -- plots ----------------------------------------------------------------------------------------------------


def _colors(names: list[str]) -> dict[str, tuple]:
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {n: cmap(i % cmap.N) for i, n in enumerate(names)}


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


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
    ax.set_yticks(range(len(prompts), 0, -1), [f"{p.name}\n{_plural(p.rows, 'row')}" for p in prompts])
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
                   color=colors[p.name], linewidths=0, label=f"{p.name} ({_plural(p.rows, 'row')})")
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
    ax.set_title(f"Rejects by prompt and reason ({_plural(total, 'reject')})"
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
    ax.set_title(f"Throughput over time ({_plural(len(ranks), 'task')}, {_plural(run.chunks, 'chunk')})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


# -- report.md ------------------------------------------------------------------------------------------------


def _n(x) -> str:
    return f"{x:,}"


def write_markdown(run: RunData, tm: Timing, out: Path, notes: dict[str, str]) -> Path:
    import numpy as np

    m, cfg = run.manifest, run.manifest.get("config", {})
    sampling = cfg.get("sampling") or {}
    samp = ", ".join(f"{k} {v}" for k, v in sampling.items() if v is not None)
    prompts = list(run.prompts.values())
    total_rows = sum(p.rows for p in prompts)
    total_rejects = sum(sum(p.rejects.values()) for p in prompts)
    out_tokens = sum(int(p.output_tokens.sum()) for p in prompts)
    in_tokens = sum(int(p.input_tokens.sum()) for p in prompts)
    tasks = cfg.get("tasks", len(run.ledgers))
    finished = sum(1 for s in run.ledgers.values() if s.finished)
    L = [f"# finephrase report: `{run.root}`", ""]
    L.append(f"- **status**: {m.get('status', '?')} (created {m.get('created_at', '?')}, "
             f"updated {m.get('updated_at', '?')}); {finished} of {tasks} tasks finished, "
             f"{_plural(run.chunks, 'chunk')} committed, {max(tm.sessions, len(m.get('sessions', [])))} session(s)")
    L.append(f"- **model**: `{cfg.get('model')}` (backend `{cfg.get('backend')}`), context length "
             f"{cfg.get('context_length')}; sampling: {samp or 'server defaults'}")
    L.append("- **prompts**: " + ", ".join(f"`{p.name}` (`{p.hash}`)" for p in prompts))
    filt = sum(run.filtered.values())
    L.append(f"- **documents**: {_n(run.documents)} read, {_n(filt)} of them filtered")
    L.append(f"- **rows**: {_n(total_rows)}, **rejects**: {_n(total_rejects)}")
    rejected = sum(run.rejected_tokens.values())
    L.append(f"- **tokens** (published rows): input {_n(in_tokens)}, output {_n(out_tokens)}"
             + (f"; rejected generations: {_n(rejected)} more output tokens" if rejected else ""))
    if tm.active_s > 0:
        idle = f"; {duration_decimal(tm.idle_s)} between sessions not counted" if tm.idle_s > 0.5 else ""
        untimed = (f"; not counted: {_n(tm.untimed_tokens)} tokens of chunks without a known start"
                   if tm.untimed_tokens else "")
        L.append(f"- **lifetime throughput**: {tm.lifetime:,.1f} output tokens/s "
                 f"({_n(tm.timed_tokens)} tokens over {duration_decimal(tm.active_s)} of wall-clock time while the "
                 f"run was running{idle}{untimed})"
                 + (f"; {(tm.timed_tokens + tm.timed_rejected_tokens) / tm.active_s:,.1f} tokens/s with the rejected "
                    f"generations" if tm.timed_rejected_tokens else ""))
    else:
        L.append("- **lifetime throughput**: unknown (no committed chunk with a known start time)")
    if m.get("status") != "finished":
        L += ["", "> The run is not finished: the numbers cover the committed chunks only."]
    for problem in run.problems:
        L += ["", f"> **Warning**: {problem}."]

    L += ["", "## Per prompt", "",
          "| prompt | hash | rows | rejects | output tokens | mean output | median output | input tokens |",
          "|---|---|---:|---:|---:|---:|---:|---:|"]
    for p in prompts:
        mean = f"{p.output_tokens.mean():.1f}" if p.rows else "-"
        median = f"{np.median(p.output_tokens):.1f}" if p.rows else "-"
        L.append(f"| {p.name} | `{p.hash}` | {_n(p.rows)} | {_n(sum(p.rejects.values()))} | "
                 f"{_n(int(p.output_tokens.sum()))} | {mean} | {median} | {_n(int(p.input_tokens.sum()))} |")

    L += ["", "## Rejects by reason", ""]
    if total_rejects:
        L += ["| prompt | reason | rejects |", "|---|---|---:|"]
        for p in prompts:
            for reason, n in sorted(p.rejects.items(), key=lambda kv: (-kv[1], kv[0])):
                L.append(f"| {p.name} | {reason} | {_n(n)} |")
    else:
        L.append("No rejects.")
    if run.filtered:
        L += ["", "## Filtered documents", "", "| reason | documents |", "|---|---:|"]
        L += [f"| {r} | {_n(n)} |" for r, n in sorted(run.filtered.items(), key=lambda kv: (-kv[1], kv[0]))]

    if len(run.ledgers) > 1 and len(run.ledgers) <= 16:
        L += ["", "## Per task", "", "| task | chunks | documents | output tokens | active time | tokens/s |",
              "|---:|---:|---:|---:|---:|---:|"]
        for rank, state in sorted(run.ledgers.items()):
            active = tm.rank_active.get(rank, 0.0)
            timed = sum(iv[2] for iv in tm.intervals.get(rank, []))
            rate = f"{timed / active:,.1f}" if active > 0 else "-"
            L.append(f"| {rank} | {len(state.entries)} | {_n(sum(e.get('docs', 0) for e in state.entries))} | "
                     f"{_n(sum(e.get('output_tokens', 0) for e in state.entries))} | "
                     f"{duration_decimal(active)} | {rate} |")

    L += ["", "## Plots", ""]
    for name, (title, caption) in PLOTS.items():
        L += [f"### {title}", "", f"{caption}." + (f" {notes[name]}" if name in notes else ""), "",
              f"![{title}]({name})", ""]
    L.append(f"_Written by `finephrase report` at {_iso(time.time())}._")
    path = out / "report.md"
    path.write_text("\n".join(L) + "\n")
    return path


# -- entry point ----------------------------------------------------------------------------------------------


def _import_pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("finephrase report needs matplotlib: pip install 'finephrase[report]'") from None
    return plt


def build_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the PNG plots and report.md of the run in `run_dir` to `out` (default `run_dir/report/`)."""
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
    return write_markdown(run, tm, out, notes)
