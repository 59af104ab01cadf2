"""The array form: task R of N re-checks the units R::N of the plan and records its tally in
`DIR/.gate/part_RRRRR_of_NNNNN.json`; `--merge` adds up the parts of one complete N.

Each part carries a digest of what its result depends on: finephrase's version, the gate's thresholds, each
prompt's template as loaded now (content hash and `[check]` table), --no-source, the examples kept, and the state
of the folder (its manifest, the size of each ledger). A part whose digest differs from the current one is stale
and is not merged.
"""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path

import orjson

from finephrase.errors import UsageError
from finephrase.quality.recheck.plan import Plan
from finephrase.quality.recheck.tally import Tally
from finephrase.store.layout import LEDGER_DIR, MANIFEST, durable_write

GATE_DIR = ".gate"
_PART = re.compile(r"^part_(\d{5})_of_(\d{5})\.json$")


def part_path(root: Path, rank: int, tasks: int) -> Path:
    return root / GATE_DIR / f"part_{rank:05d}_of_{tasks:05d}.json"


def digest(plan: Plan, examples: int) -> str:
    """What a part's result depends on, as 16 hex characters (see the module's docstring)."""
    import finephrase
    from finephrase.prompts.library import template_now
    from finephrase.quality.gate import QualityGate

    now = {n: template_now(n, plan.manifest) for n in plan.prompts}
    templates = {n: [t.hash, repr(t.check_items)] for n, t in now.items()}
    ledgers = sorted((p.name, p.stat().st_size) for p in (plan.root / LEDGER_DIR).glob("rank_*.jsonl"))
    state = {"version": finephrase.__version__, "gate": repr(QualityGate()), "templates": templates,
             "source": plan.skipped or "", "examples": examples, "ledgers": ledgers,
             "manifest": hashlib.sha256((plan.root / MANIFEST).read_bytes()).hexdigest()}
    return hashlib.sha256(orjson.dumps(state, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def write_part(plan: Plan, rank: int, tasks: int, tally: Tally, settings: str) -> Path:
    data = {"rank": rank, "tasks": tasks, "settings": settings, "source_checks": plan.source_checks,
            "source_skipped": plan.skipped, "units": len(plan.units[rank::tasks]), "written_at": time.time(),
            "tally": tally.to_json()}
    return durable_write(part_path(plan.root, rank, tasks), orjson.dumps(data, option=orjson.OPT_INDENT_2))


def _sizes(root: Path) -> dict[int, list[int]]:
    """{array size N: [ranks with a part]} of the parts in DIR/.gate."""
    out: dict[int, list[int]] = {}
    for p in sorted((root / GATE_DIR).glob("part_*_of_*.json")):
        if m := _PART.match(p.name):
            out.setdefault(int(m.group(2)), []).append(int(m.group(1)))
    return out


def _array_size(root: Path, tasks: int | None) -> tuple[int, list[int]]:
    sizes = _sizes(root)
    hint = f"run `finephrase gate {root} --rank R --tasks N` for R = 0..N-1 first"
    if not sizes:
        raise UsageError(f"{root}/{GATE_DIR} holds no parts to merge: {hint}")
    if tasks is None:
        if len(sizes) > 1:
            raise UsageError(f"{root}/{GATE_DIR} holds parts of several array sizes "
                             f"({', '.join(map(str, sorted(sizes)))}): pass --tasks N")
        tasks = next(iter(sizes))
    if tasks not in sizes:
        raise UsageError(f"{root}/{GATE_DIR} holds no parts of {tasks} tasks: {hint}")
    return tasks, sizes[tasks]


def merge_parts(plan: Plan, examples: int, tasks: int | None = None) -> Tally:
    """The sum of the parts of one complete array (N from --tasks, or the only N there is); a one-line
    UsageError when parts are missing or stale."""
    tasks, have = _array_size(plan.root, tasks)
    missing = sorted(set(range(tasks)) - set(have))
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (", ..." if len(missing) > 10 else "")
        raise UsageError(f"{plan.root}/{GATE_DIR} has {len(have)} of {tasks} parts: missing task(s) {shown} "
                         f"(`finephrase gate {plan.root} --rank R --tasks {tasks}` for each)")
    settings, total, stale = digest(plan, examples), Tally(plan.prompts, examples), []
    for rank in range(tasks):
        data = orjson.loads(part_path(plan.root, rank, tasks).read_bytes())
        if data.get("settings") != settings:
            stale.append(rank)
            continue
        total.merge(Tally.from_json(data["tally"]))
    if stale:
        raise UsageError(f"part(s) {', '.join(map(str, stale[:10]))} of {tasks} in {plan.root}/{GATE_DIR} are stale "
                         f"(another finephrase version, gate, template, --no-source, or the run changed since): "
                         f"rerun those tasks")
    return total
