"""`report.md` of `finephrase report`: the run's summary, tables per prompt, reject reason and task, and the plots
embedded with their captions."""

from __future__ import annotations

import time
from pathlib import Path

from finephrase.formatting import duration_decimal, plural
from finephrase.monitor.report.data import RunData
from finephrase.monitor.report.plots import PLOTS
from finephrase.monitor.report.timeline import Timing, _iso
from finephrase.serving.truncation import ledger_truncation, truncation_text


def _n(x) -> str:
    return f"{x:,}"


def _summary_lines(run: RunData, tm: Timing) -> list[str]:
    """The title and the bullet list at the top: status, model, prompts, counts, truncation, tokens, lifetime
    throughput, and the warnings (an unfinished run, counts that differ from the ledgers')."""
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
             f"{plural(run.chunks, 'chunk')} committed, {max(tm.sessions, len(m.get('sessions', [])))} session(s)")
    L.append(f"- **model**: `{cfg.get('model')}` (backend `{cfg.get('backend')}`), context length "
             f"{cfg.get('context_length')}; sampling: {samp or 'server defaults'}")
    L.append("- **prompts**: " + ", ".join(f"`{p.name}` (`{p.hash}`)" for p in prompts))
    filt = sum(run.filtered.values())
    L.append(f"- **documents**: {_n(run.documents)} read, {_n(filt)} of them filtered")
    if truncated := truncation_text(ledger_truncation(run.ledgers)):
        L.append(f"- **truncated** to fit the context: {truncated}")
    L.append(f"- **rows**: {_n(total_rows)}, **rejects**: {_n(total_rejects)}")
    if regenerated := _regeneration_line(run, cfg):
        L.append(regenerated)
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
    return L


def _regeneration_line(run: RunData, cfg: dict) -> str | None:
    """With regeneration on: per prompt the share published and the attempts a row took, and the attempts
    discarded with their tokens (from the ledgers)."""
    if not (regen := cfg.get("regenerate")):
        return None
    entries = [e for s in run.ledgers.values() for e in s.entries]
    discarded = sum(sum((e.get("retries") or {}).values()) for e in entries)
    tokens = sum(e.get("retry_tokens", 0) or 0 for e in entries)
    per = []
    for p in run.prompts.values():
        attempts = sum((e.get("published_attempts") or {}).get(p.name, 0) for e in entries)
        pairs = p.rows + sum(p.rejects.values())
        if pairs:
            per.append(f"`{p.name}` {p.rows / pairs:.0%} published" + (f", {attempts / p.rows:.2f} attempts/row"
                                                                       if p.rows and attempts else ""))
    return (f"- **regeneration**: up to {regen['max_attempts']} generations per (document, prompt); "
            + "; ".join(per) + f"; {_n(discarded)} attempts discarded ({_n(tokens)} tokens generated)")


def _prompt_table(run: RunData) -> list[str]:
    import numpy as np

    L = ["", "## Per prompt", "",
         "| prompt | hash | rows | rejects | output tokens | mean output | median output | input tokens |",
         "|---|---|---:|---:|---:|---:|---:|---:|"]
    for p in run.prompts.values():
        mean = f"{p.output_tokens.mean():.1f}" if p.rows else "-"
        median = f"{np.median(p.output_tokens):.1f}" if p.rows else "-"
        L.append(f"| {p.name} | `{p.hash}` | {_n(p.rows)} | {_n(sum(p.rejects.values()))} | "
                 f"{_n(int(p.output_tokens.sum()))} | {mean} | {median} | {_n(int(p.input_tokens.sum()))} |")
    return L


def _reject_tables(run: RunData) -> list[str]:
    """Rejects per (prompt, reason), and filtered documents per reason if any."""
    prompts = list(run.prompts.values())
    total_rejects = sum(sum(p.rejects.values()) for p in prompts)
    L = ["", "## Rejects by reason", ""]
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
    return L


def _task_table(run: RunData, tm: Timing) -> list[str]:
    """Per task, for runs of 2 to 16 tasks (none otherwise)."""
    L = []
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
    return L


def _plot_sections(notes: dict[str, str]) -> list[str]:
    L = ["", "## Plots", ""]
    for name, (title, caption) in PLOTS.items():
        L += [f"### {title}", "", f"{caption}." + (f" {notes[name]}" if name in notes else ""), "",
              f"![{title}]({name})", ""]
    return L


def write_markdown(run: RunData, tm: Timing, out: Path, notes: dict[str, str], extra: list[str] = ()) -> Path:
    L = _summary_lines(run, tm)
    L += _prompt_table(run)
    L += _reject_tables(run)
    L += _task_table(run, tm)
    L += _plot_sections(notes)
    L += list(extra)
    L.append(f"_Written by `finephrase report` at {_iso(time.time())}._")
    path = out / "report.md"
    path.write_text("\n".join(L) + "\n")
    return path
