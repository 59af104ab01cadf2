"""The text of `finephrase status`: the run's summary lines and its table of tasks (render, from collect's dict),
and the lines for a dedup output (render_dedup, from dedup_summary's)."""

from __future__ import annotations

import statistics

from finephrase.formatting import duration, plural
from finephrase.monitor.occupancy import in_flight_line
from finephrase.monitor.progress import prefill_line
from finephrase.monitor.status.task import STATES
from finephrase.quality.regenerate import prompt_yield
from finephrase.serving.truncation import truncation_text

MAX_TASK_LINES = 20  # above this, per-task lines collapse into a summary


def render_dedup(rep: dict) -> str:
    """The text of `finephrase status` for a dedup or decontaminated output (rep: dedup_summary's)."""
    prompts = rep["prompts"] or list(rep["kept"])
    gone = "" if rep["source_exists"] else " (that folder is no longer here)"
    dedup = rep.get("kind", "dedup") == "dedup"
    how = f"scope {rep['scope']}" if dedup else ("audit only" if rep.get("audit_only") else "overlaps removed")
    lines = [f"{'dedup' if dedup else 'decontam'} {' ' * 3 if dedup else ''}{rep['dir']}: {rep.get('kind', 'dedup')} "
             f"output of {rep['source'] or 'an unrecorded run'}{gone}; {how}; finished "
             f"{rep['finished_at'] or 'at an unrecorded time'}"]
    if rep["params"]:
        lines.append("params   " + ", ".join(f"{k} {v}" for k, v in rep["params"].items()))
    lines.append("kept     " + (", ".join(f"{p} {rep['kept'].get(p, 0):,} of {rep['input'].get(p, 0):,}"
                                          for p in prompts) or "none"))
    lines.append(("flagged  " if rep.get("audit_only") else "removed  ") + (", ".join(
        f"{p} {rep['removed_total'].get(p, 0):,} ("
        + ", ".join(f"{k} {v:,}" for k, v in rep["removed"].get(p, {}).items()) + ")" for p in prompts) or "none"))
    if rep["source_status"]:
        lines.append(f"the rephrasing progress is the source run's: `{rep['source_status']}`")
    return "\n".join(lines)


def _n(v) -> str:
    return "?" if v is None else f"{v:,}"


def _rate(v) -> str:
    return "-" if v is None else (f"{v:,.0f}" if v >= 100 else f"{v:.1f}")


def _gpu_h(v: float) -> str:
    if v == 0:
        return "0"
    return f"{v:,.1f}" if v >= 100 else (f"{v:.2f}" if v >= 1 else f"{v:.4f}")


def _done(docs, total, kind) -> str:
    if total is None:
        return f"{docs:,} / ?"
    pct = f" ({100 * docs / total:.1f}%)" if total else ""
    return f"{docs:,} / {'~' if kind == 'estimate' else ''}{total:,}{pct}"


def _ago(t: float | None, now: float) -> str:
    return "-" if t is None else f"{duration(max(now - t, 0))} ago"


def _busy(task: dict) -> str:
    """`1,987/2,048`: a task's requests in flight (recent mean while it runs) against its --max-concurrency."""
    if task.get("in_flight") is None or not task.get("in_flight_target"):
        return "-"
    return f"{task['in_flight']:,.0f}/{task['in_flight_target']:,}"


def _occupancy_lines(rep: dict) -> list[str]:
    """Requests in flight over the running tasks (or, when none runs, over their last sessions), and the
    oldest stragglers: requests far slower than the median, which keep their chunk from committing."""
    tasks = [x for x in rep["per_task"] if x.get("in_flight") is not None and x.get("in_flight_target")]
    running = [x for x in tasks if x["state"] == "running"]
    shown = running or tasks
    if not shown:
        return []
    mean, target = sum(x["in_flight"] for x in shown), sum(x["in_flight_target"] for x in shown)
    what = "recent mean of the running tasks" if running else "mean of each task's last session"
    out = [f"busy     {in_flight_line(mean, target)} ({what})"]
    late = sorted((s | {"rank": x["rank"]} for x in running for s in x["stragglers"]), key=lambda s: -s["seconds"])
    if late:
        out.append("stragglers " + ", ".join(f"{s['id']} ({s['prompt']}, task {s['rank']} chunk {s['chunk']}) "
                                            f"{duration(s['seconds'])}" for s in late[:5])
                   + (f", ... ({len(late)} named in the snapshots)" if len(late) > 5 else ""))
    return out


def _summary_lines(rep: dict) -> list[str]:
    """The lines above the table: state, documents and ETA, rows, rejects, in format, filtered, tokens, prefill,
    truncated documents, requests in flight."""
    t = rep["total"]
    lines = []
    lines.append(f"run      {rep['dir']}: {rep['state'].upper()}  ({rep['backend']}, {rep['model']}; prompts "
                 f"{', '.join(rep['prompts'])}; {rep['tasks']} task{'s' if rep['tasks'] != 1 else ''}: "
                 + ", ".join(f"{n} {s}" for s, n in rep["states"].items()) + ")")
    kind = t["docs_total_kind"] + (f": {t['docs_total_note']}" if t.get("docs_total_note") else "")
    eta = "-" if rep["state"] == "finished" else duration(t["eta_s"])
    if rep["state"] not in ("finished", "running") and t["eta_s"] is not None:
        eta += " if resumed"
    lines.append(f"docs     {_done(t['docs_done'], t['docs_total'], t['docs_total_kind'])} done, total {kind}"
                 f"; ETA {eta}")
    if draining := [x for x in rep["per_task"] if x.get("draining") is not None]:
        lines.append(f"draining {plural(len(draining), 'task')} finishing the requests in flight, then stopping: "
                     f"{plural(sum(x['draining'] for x in draining), 'request')} left, the last done in about "
                     f"{duration(max((x['eta_s'] for x in draining if x['eta_s'] is not None), default=None))}")
    lines.append("rows     " + (", ".join(f"{p} {n:,}" for p, n in t["rows"].items()) or "none"))
    rej = ", ".join(f"{k} {v:,}" for k, v in sorted(t["rejects"].items(), key=lambda kv: -kv[1]))
    lines.append(f"rejects  {t['rejects_total']:,}" + (f" ({rej})" if rej else ""))
    lines += _yield_lines(t)
    if t["filtered_total"]:
        lines.append(f"filtered {t['filtered_total']:,} (" + ", ".join(f"{k} {v:,}" for k, v in t["filtered"].items())
                     + ")")
    lines.append(f"tokens   input {t['input_tokens']:,}, output {t['output_tokens']:,}; output tok/s "
                 f"{_rate(t['output_tok_s'])} lifetime, {_rate(t['output_tok_s_recent'])} last "
                 f"{rep['recent_minutes']:g} min")
    if t["prompt_tokens"]:
        lines.append(f"prefill  {prefill_line(t['prompt_tokens'], t['cached_tokens'])}")
    if truncated := truncation_text(t):  # documents cut to fit the context
        lines.append(f"truncated {truncated}")
    lines += _occupancy_lines(rep)
    return lines


def _yield_lines(t: dict) -> list[str]:
    """Per prompt, the share of (document, prompt) pairs published (they passed the quality gate) and, with
    regeneration, the attempts a row took; then what the discarded attempts cost."""
    shares = []
    for p in t["rows"]:
        n, checked, attempts = prompt_yield(t, p)
        per_row = f" ({attempts:.2f} attempts/row)" if attempts and t.get("retries") else ""
        shares.append(f"{p} {n / checked:.0%}{per_row}" if checked else f"{p} -")
    lines = ["published " + ", ".join(shares) + "  (docs/quality.md)"] if shares else []
    if discarded := sum((t.get("retries") or {}).values()):
        lines.append(f"regenerated {discarded:,} attempts discarded for a new one ({t.get('retry_tokens', 0):,} "
                     f"tokens generated)")
    return lines


def _time_line(rep: dict) -> str:
    """Wall and task time, GPU-hours (and where gpus_per_task came from), per billion tokens, per GPU, cost."""
    t = rep["total"]
    used = sorted({g for x in rep["per_task"] for g in x["gpus_per_task"]})
    if rep["gpus_per_task"] is not None:
        gpu_note = f"{rep['gpus_per_task']} GPU{'s' if rep['gpus_per_task'] != 1 else ''} per task, --gpus-per-task"
    elif used:
        gpu_note = f"{' or '.join(map(str, used))} GPU{'s' if used != [1] else ''} per task, from the manifest"
    else:
        gpu_note = "no session recorded yet"
    if used == [0] and rep["gpus_per_task"] is None:
        gpu_note += "; --gpus-per-task N to count them"
    per_b = t["gpu_hours_per_billion_output_tokens"]
    cost = (f"; cost ${t['cost']:,.2f} at ${rep['price_per_gpu_hour']:g}/GPU-hour" if t["cost"] is not None else "")
    return (f"time     {duration(t['wall_s'])} wall, {duration(t['task_s'])} task time; GPU-hours "
            f"{_gpu_h(t['gpu_hours'])} ({gpu_note})"
            + (f", {per_b:,.1f} per billion output tokens" if per_b is not None and t["gpu_hours"] else "")
            + (f", {_rate(t['output_tok_s_per_gpu'])} output tok/s per GPU" if t["output_tok_s_per_gpu"] else "")
            + cost)


def _task_line(x: dict, now: float) -> str:
    state = x["state"] if x.get("draining") is None else "draining"
    return (f"{x['rank']:>5}  {state:<11} {_done(x['docs_done'], x['docs_total'], x['docs_total_kind']):<26} "
            f"{sum(x['rows'].values()):>8,} {x['rejects_total']:>7,} {x['output_tokens']:>11,} "
            f"{_rate(x['output_tok_s']):>7} {_rate(x['output_tok_s_recent']):>7} {_busy(x):>11} "
            f"{('-' if x['state'] == 'finished' else duration(x['eta_s'])):>7} {_gpu_h(x['gpu_hours']):>8}  "
            f"{_ago(x['updated_at'] or x['last_commit_at'], now)}")


def _task_lines(rep: dict) -> list[str]:
    """A blank line, then the table of tasks, or above MAX_TASK_LINES tasks a summary by state and the table of
    the tasks that need attention."""
    now = rep["now"]
    tasks = rep["per_task"]
    lines = [""]
    header = (f"{'TASK':>5}  {'STATE':<11} {'DOCS DONE / TOTAL':<26} {'ROWS':>8} {'REJECTS':>7} {'OUT TOK':>11} "
              f"{'TOK/S':>7} {'RECENT':>7} {'IN FLIGHT':>11} {'ETA':>7} {'GPU-H':>8}  UPDATED")
    if len(tasks) <= MAX_TASK_LINES:
        lines.append(header)
        lines.extend(_task_line(x, now) for x in tasks)
    else:
        rates = [x["output_tok_s"] for x in tasks if x["output_tok_s"]]
        if rates:
            lines.append(f"tasks    output tok/s per task: min {_rate(min(rates))}, median "
                         f"{_rate(statistics.median(rates))}, max {_rate(max(rates))}")
        for s in STATES:
            ranks = [x["rank"] for x in tasks if x["state"] == s]
            if ranks:
                shown = ", ".join(map(str, ranks[:12])) + (f", ... (+{len(ranks) - 12})" if len(ranks) > 12 else "")
                lines.append(f"  {s:<11} {len(ranks):>6}: {shown}")
        attention = [x for x in tasks if x["state"] in ("stale", "failed", "interrupted")]
        if attention:
            lines.append("")
            lines.append(header)
            lines.extend(_task_line(x, now) for x in attention[:MAX_TASK_LINES])
            if len(attention) > MAX_TASK_LINES:
                lines.append(f"  ... {len(attention) - MAX_TASK_LINES} more (--json lists every task)")
    return lines


def render(rep: dict) -> str:
    lines = _summary_lines(rep)
    lines.append(_time_line(rep))
    lines += _task_lines(rep)
    if rep["states"].get("stale"):
        lines.append(f"stale: a task says running but has not written its snapshot for more than "
                     f"{duration(rep['stale_after_s'])} (killed, or its node is gone?): rerun the command to resume it")
    return "\n".join(lines)
