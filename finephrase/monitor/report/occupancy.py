"""`occupancy.png` of `finephrase report`: requests in flight over wall-clock time, against --max-concurrency.

Each ledger line records `in_flight`, the task's mean requests in flight since its previous commit (sampled once a
second: finephrase/monitor/occupancy.py). A task's curve is that mean held from its previous commit (or the start of its
session) to the commit; the total is the sum over the tasks, in bins. The target is `max_concurrency` of the
tasks' sessions summed over the tasks running, so a run that keeps its engine's queue full runs along it.
"""

from __future__ import annotations

from pathlib import Path

BINS = 120


def occupancy_steps(run, tm) -> dict[int, list[tuple[float, float, float]]]:
    """rank -> (start, end, mean in flight) per committed chunk that recorded it."""
    out = {}
    for rank, state in run.ledgers.items():
        entries = sorted((e for e in state.entries if e.get("committed_at")), key=lambda e: e["committed_at"])
        starts = [a for a, _ in tm.periods]
        steps, prev = [], None
        for e in entries:
            t1 = float(e["committed_at"])
            session = max((a for a in starts if a <= t1), default=None)
            t0 = prev if prev is not None and (session is None or prev >= session) else session
            prev = t1
            if e.get("in_flight") is not None and t0 is not None and t1 > t0:
                steps.append((t0, t1, float(e["in_flight"])))
        if steps:
            out[rank] = steps
    return out


def _target(run) -> int | None:
    sessions = [s for s in run.manifest.get("sessions", []) if s.get("max_concurrency")]
    if not sessions:
        return None
    tasks = run.manifest.get("config", {}).get("tasks") or 1
    return int(sessions[-1]["max_concurrency"]) * int(tasks)


def plot_occupancy(plt, run, tm, path: Path, note):
    import numpy as np

    steps = occupancy_steps(run, tm)
    if not steps:
        note(plt, path, "Requests in flight", "no chunk recorded its requests in flight\n(runs before this was "
             "recorded, or chunks shorter than a second)")
        return
    t_first = min(a for s in steps.values() for a, _, _ in s)
    t_last = max(b for s in steps.values() for _, b, _ in s)
    edges = np.linspace(t_first, max(t_last, t_first + 1e-6), BINS + 1)
    total = np.zeros(BINS)
    for s in steps.values():
        for a, b, mean in s:  # time-weighted: the share of each bin the step covers
            overlap = np.clip(np.minimum(b, edges[1:]) - np.maximum(a, edges[:-1]), 0, None)
            total += mean * overlap / np.diff(edges)
    span = t_last - t_first
    scale, unit = (3600, "h") if span >= 7200 else (60, "min") if span >= 120 else (1, "s")
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.stairs(total, (edges - t_first) / scale, color="black", linewidth=2, label="requests in flight (all tasks)")
    target = _target(run)
    if target:
        ax.axhline(target, color="tab:green", linestyle="--", linewidth=1.2,
                   label=f"--max-concurrency x tasks ({target:,})")
        ax.set_ylim(0, target * 1.1)
    else:
        ax.set_ylim(bottom=0)
    ax.set_xlim(0, (edges[-1] - t_first) / scale)
    ax.set_xlabel(f"wall-clock time since the first measured chunk ({unit})")
    ax.set_ylabel("mean requests in flight")
    ax.set_title("Requests in flight (per commit, from the ledgers)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
