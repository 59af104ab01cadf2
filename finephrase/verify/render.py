"""The text of `finephrase verify DIR` (and its --json), and the command's entry point."""

from __future__ import annotations

import sys

import orjson

from finephrase.errors import UsageError
from finephrase.process.array_task import share_from_flags
from finephrase.verify.report import Report


def render(report: Report, output) -> str:
    """The text of `finephrase verify DIR` for a run or a dedup output (--json prints ok, problems and stats)."""
    s = report.stats
    if report.kind in ("dedup", "decontaminated"):
        src = "source run" if report.kind == "dedup" else "source"
        against = f"its {src}'s rows" if s.get("source_checked") else \
            f"the manifest only (the {src} is no longer there)"
        how = f"scope {s.get('scope')}" if report.kind == "dedup" else \
            ("audit: nothing removed" if s.get("audit_only") else "overlapping rows removed")
        lines = [f"{output}: {report.kind} output of {s.get('source')}, {s.get('input_rows', 0)} rows in, "
                 f"{len(s.get('prompts', []))} prompts ({how}), checked against {against}"]
        ok = f"OK: {report.kind} output of {s.get('source')}: every row is kept or removed exactly once, counts " \
             f"as recorded"
    else:
        share = s.get("share")
        of = f" (tasks {share['rank']}::{share['of']}: {share['tasks_checked']} of them)" if share else ""
        lines = [f"{output}: {s.get('input_documents', 0)} input documents, {s.get('filtered', 0)} filtered, "
                 f"{len(s.get('prompts', []))} prompts, {s.get('tasks')} tasks{of}"]
        ok = "OK: every (document, prompt) has exactly one row or reject"
    if report.ok:
        lines.append(ok)
    else:
        lines.append(f"FAILED: {len(report.problems)} problems")
        lines.extend(f"  - {line}" for line in report.problems)
    return "\n".join(lines)


def main(args) -> int:
    """`finephrase verify DIR [--json] [--rank R --tasks N] [--workers K] [--fresh]`: the report printed; exit 0
    when ok, 1 otherwise."""
    from finephrase.verify.check import verify

    share = share_from_flags(getattr(args, "rank", None), getattr(args, "tasks", None))
    workers = getattr(args, "workers", 1) or 1
    if workers < 1:
        raise UsageError(f"--workers {workers}: at least 1")
    report = verify(args.output, share=share, workers=workers, fresh=getattr(args, "fresh", False))
    if args.json:
        print(orjson.dumps({"ok": report.ok, "problems": report.problems, "stats": report.stats},
                           option=orjson.OPT_INDENT_2).decode())
    else:
        print(render(report, args.output))
    if report.reused:
        print(f"({report.reused} recorded verdicts reused, {report.checked} checked now; --fresh checks all)",
              file=sys.stderr)
    return 0 if report.ok else 1
