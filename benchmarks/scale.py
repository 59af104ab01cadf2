"""Scale rehearsal: the paper's run (339M documents x faq, math, table, tutorial = 1.356B rows on 100 tasks) at
1/10,000 and 1/1,000, through every post-run command, to see what grows with the input before the real run does.

    python benchmarks/scale.py                          # 1/10,000 (33.9k documents) and 1/1,000 (339k), 16 tasks
    python benchmarks/scale.py --scales 10000           # 1/10,000 only
    python benchmarks/scale.py --quick                  # 1/100,000 (3.4k documents): what the test suite runs

Per scale: generated web-like documents (parquet, 4 files per task, a few exact and near duplicates; cached by
size in --workdir), then `finephrase rephrase` as --tasks processes started at the same instant (each waits on a
barrier file, then starts) against a stand-in server, then verify -> dedup -> compact -> card -> gate ->
publish --dry-run -> mix, each as the README shows them. Every stage process is measured: wall, peak RSS and CPU
time (`os.wait4` by a small wrapper process per command, so a measured process does not inherit this script's
peak RSS), exit code, and the last error line of a failure.

The stand-in server is benchmarks/zero_server.py --vary: every answer is made from its request (the prompt's
shape, filled with the document's own words), so the quality gate passes them and dedup finds only the
planted duplicates. It is not a model and needs none: what is under test is finephrase's own scaling (reading,
requests, gating, commits, manifests, verify, dedup, compaction, cards, mixing), not generation.

Array stages (one process per task, --tasks of them at once here, 100 in the paper): rephrase, compact, and
verify / gate when they take --rank (else one process); mix when it takes --rank: its SLURM array form, the same
--tasks processes `mix ... --rank R --tasks N --workers 1` started together round after round (count; plan,
scatter; shards) until mix.json exists (at most 4), its output checked (mix.json, and train/ holding its rows).
dedup, when it takes --tasks, runs as `dedup RUN --output OUT --tasks T --workers W` (W: this machine's CPUs),
the parallel form of the command; its CPU is every process's (the wrapper is a child subreaper, so datatrove's
forkserver pools are counted). One-process stages: card, publish --dry-run, the verify join and gate --merge
(and dedup, mix, verify, gate without those flags). Extrapolation to the paper: array stage hours = paper rows /
(rows per CPU-second) / 100 (each task with a core of its own); one-process stage hours = paper rows / (rows/s)
with no division. Array stages with a part that does not split add it, extrapolated by rows and not divided:
dedup the datatrove stages whose task count is not --tasks (exact find, clusters, finalize: 1 task; buckets:
--buckets tasks, their time / their tasks), timed by datatrove's stats.json, the prompts' chains one after
another as the command runs them; mix the plan (one task, `timing.plan_s` of mix.json). Rows are the stage's own
(rephrase and verify: documents x prompts; dedup and gate: the run's published rows; compact, card, publish: the
rows in the dedup output; mix: the synthetic rows plus the source documents), scaled to the paper by 339M /
documents.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import base_parser, finephrase_cmd, fmt, machine, machine_line, sample_texts, table, write_results  # noqa: E402
from _scale_stages import (  # noqa: E402
    PAPER_DOCS,
    PAPER_TASKS,
    PROMPTS,
    help_flags,
    parquet_rows,
    published_rows,
    run_dedup_tasks,
    run_measured,
    run_mix_array,
    run_rephrase,
    run_rows,
    summarize,
)

NAME = "scale"
PAPER_ROWS = PAPER_DOCS * len(PROMPTS)
FILES_PER_TASK = 4  # finephrase shards whole files from 4 per task (ResumableReader.shard)
STAGES = ("rephrase", "verify", "dedup", "compact", "card", "gate", "publish", "mix")
INPUT_VERSION = 1  # bump when the generated documents change (the cache key)


# -- input documents --------------------------------------------------------------------------------------------


def _vocabulary():
    """The bundled sample's words (lowercase) and their frequencies, and 8 written forms of each: plain,
    sentence end, capitalised, both, and the same ending a paragraph (index = word + V * form)."""
    from collections import Counter

    import numpy as np

    counts = Counter(w.lower() for w in re.findall(r"[A-Za-z]{2,}", " ".join(r["text"] for r in sample_texts())))
    words = list(counts)
    p = np.array([counts[w] for w in words], dtype=float)
    forms = []
    for para in (False, True):
        for cap in (False, True):
            for end in (False, True):
                forms += [(w.capitalize() if cap else w) + ("." if end else "") + ("\n\n" if para and end else "")
                          for w in words]
    return np.array(forms, dtype=object), p / p.sum(), len(words)


def _documents(rng, n: int, vocab) -> list[str]:
    """n documents of ~300-3000 characters: the sample's word frequencies, a fifth of each document's words from
    its own 20 topic words, sentences of ~14 words, paragraphs of ~6 sentences."""
    import numpy as np

    forms, p, v = vocab
    lengths = (np.exp(rng.uniform(np.log(300), np.log(3000), n)) / 6.5).astype(int) + 1
    total = int(lengths.sum())
    idx = rng.choice(v, size=total, p=p)
    owner = np.repeat(np.arange(n), lengths)
    topics = rng.integers(0, v, size=(n, 20))
    topical = rng.random(total) < 0.2
    idx[topical] = topics[owner[topical], rng.integers(0, 20, int(topical.sum()))]
    ends = np.cumsum(lengths)
    end = rng.random(total) < 1 / 14
    end[ends - 1] = True
    cap = np.zeros(total, dtype=bool)
    cap[1:] = end[:-1]
    cap[ends - lengths] = True
    para = end & (rng.random(total) < 1 / 6)
    para[ends - 1] = False
    tokens = forms[idx + v * (end + 2 * cap + 4 * para)]
    starts = ends - lengths
    return [" ".join(tokens[a:b].tolist()).replace("\n\n ", "\n\n") for a, b in zip(starts, ends)]


def _plant_duplicates(rng, texts: list[str], share: float) -> tuple[int, int]:
    """Turn `share` of the documents into exact copies of others, as many into near copies (the same text and
    one sentence more); returns the counts."""
    n = len(texts)
    k = int(n * share + rng.random())  # rounded at random: the expected share, also in small files
    if n < 4 or k == 0:
        return 0, 0
    picks = rng.choice(n, size=2 * k, replace=False)
    for i, j in enumerate(picks):
        src = int(rng.integers(0, n))
        if src == j:
            continue
        texts[j] = texts[src] if i < k else f"{texts[src]} See also {texts[src].split()[1].strip('.')}."
    return k, k


def make_inputs(folder: Path, docs: int, files: int, seed: int = 0, dup_share: float = 0.003) -> dict:
    """`docs` documents in `files` parquet files (FineWeb-Edu's columns, row groups of 1,024); reused when a
    previous call wrote the same (folder/inputs.json is written last)."""
    import json

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    done = folder / "inputs.json"
    if done.exists():
        return json.loads(done.read_text())
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    vocab = _vocabulary()
    exact = near = chars = 0
    for f in range(files):
        lo, hi = docs * f // files, docs * (f + 1) // files
        texts = _documents(rng, hi - lo, vocab)
        e, nr = _plant_duplicates(rng, texts, dup_share)
        exact, near, chars = exact + e, near + nr, chars + sum(map(len, texts))
        ids = [f"<urn:scale:{docs}:{i:09d}>" for i in range(lo, hi)]
        scores = rng.integers(3, 6, hi - lo)
        pq.write_table(pa.table({
            "id": ids, "text": texts, "url": [f"https://example.org/{f}/{i}" for i in range(lo, hi)],
            "language": ["en"] * (hi - lo), "token_count": [len(t) // 4 for t in texts],
            "int_score": scores, "score": scores + rng.random(hi - lo)}),
            folder / f"part-{f:05d}.parquet", row_group_size=1024)
    info = {"documents": docs, "files": files, "exact_duplicates": exact, "near_duplicates": near,
            "text_chars": chars, "bytes": sum(p.stat().st_size for p in folder.glob("*.parquet")),
            "generated_s": round(time.perf_counter() - t0, 2)}
    done.write_text(json.dumps(info, indent=2) + "\n")
    return info


# -- stages -----------------------------------------------------------------------------------------------------


class Scale:
    """One scale's folders and settings."""

    def __init__(self, denominator: int, args, work: Path):
        self.denominator = denominator
        self.documents = round(PAPER_DOCS / denominator)
        self.tasks = args.tasks
        self.args = args
        self.base = work / f"scale-{denominator}"
        self.out, self.dedup = self.base / "run", self.base / "dedup"
        self.compact, self.mix = self.base / "compact", self.base / "mix"
        self.inputs: Path | None = None
        self.url: str | None = None

    def rephrase(self, rank: int) -> list:
        a = self.args
        extra = ([] if a.chunk_size is None else ["--chunk-size", a.chunk_size]) + \
            ([] if a.max_concurrency is None else ["--max-concurrency", a.max_concurrency])
        return finephrase_cmd("rephrase", self.inputs, "--prompt", ",".join(PROMPTS), "--backend", "endpoint",
                              "--endpoint-url", self.url, "--tasks", self.tasks, "--rank", rank, "--output", self.out,
                              "--progress-interval", 3600, *extra)

    def steps(self, stage: str, flags: dict) -> list[tuple[str, str, list[list]]]:
        """A stage after rephrase as (label, array or one, the commands): array steps get one command per task.
        verify and gate with --rank are arrays, then one process joins the tasks' verdicts (`verify DIR` reuses
        the recorded ones; `gate --merge`)."""
        ranks = range(self.tasks)
        if stage in ("verify", "gate", "compact"):
            target = {"verify": [self.out], "gate": [self.out],
                      "compact": [self.dedup, "--output", self.compact, "--quiet"]}[stage]
            have = flags[stage]
            if {"--rank", "--tasks"} <= have:
                steps = [(stage, "array", [finephrase_cmd(stage, *target, "--rank", r, "--tasks", self.tasks)
                                           for r in ranks])]
                if stage == "verify":
                    steps.append(("verify (join)", "one", [finephrase_cmd("verify", self.out)]))
                elif stage == "gate" and "--merge" in have:
                    steps.append(("gate --merge", "one",
                                  [finephrase_cmd("gate", self.out, "--merge", "--tasks", self.tasks)]))
                return steps
            workers = ["--workers", len(os.sched_getaffinity(0))] if "--workers" in have else []
            return [(stage, "one", [finephrase_cmd(stage, *target, *workers)])]
        return [(stage, "one", [{
            "dedup": finephrase_cmd("dedup", self.out, "--output", self.dedup),
            "card": finephrase_cmd("card", self.compact),
            "publish": finephrase_cmd("publish", self.compact, "--repo", "scale-rehearsal/finephrase", "--dry-run"),
            "mix": self.mix_cmd(),
        }[stage]])]

    def mix_cmd(self, *extra) -> list:
        return finephrase_cmd("mix", "--synthetic", self.compact, "--source", self.inputs, "--output", self.mix, *extra)

    def rows(self, stage: str) -> int:
        """The rows a stage handles (after it ran)."""
        if stage in ("rephrase", "verify"):
            return run_rows(self.out)
        if stage in ("dedup", "gate"):
            return published_rows(self.out)
        if stage == "compact":
            return parquet_rows(self.compact)  # the dedup output's rows, the run's rejects and dedup's removed
        if stage in ("card", "publish"):
            return parquet_rows(self.compact)
        return published_rows(self.compact) + self.documents  # mix: synthetic rows + source documents


def _progress(r: dict):
    print(f"  {r['stage']}: exit {r['exit_codes'] if r['processes'] <= 20 else r['failed']} "
          f"wall {fmt(r['wall_s'], 1)}s peak RSS {fmt(r['peak_rss_mib'], 1)} MiB rows {r['rows']:,}"
          + (f"  error: {r['errors'][-1]}" if r["errors"] else ""), flush=True)


def run_scale(denominator: int, args, work: Path, stages: list[str], flags: dict) -> dict:
    sc = Scale(denominator, args, work)
    files = FILES_PER_TASK * args.tasks
    t0 = time.perf_counter()
    info = make_inputs(work / "inputs" / f"docs-{sc.documents}-files-{files}-v{INPUT_VERSION}", sc.documents, files)
    sc.inputs = work / "inputs" / f"docs-{sc.documents}-files-{files}-v{INPUT_VERSION}"
    print(f"\n1/{denominator:,}: {sc.documents:,} documents x {len(PROMPTS)} prompts in {files} files "
          f"({info['bytes'] / 1e6:,.0f} MB, {info['exact_duplicates']} exact + {info['near_duplicates']} near "
          f"duplicates; inputs ready in {time.perf_counter() - t0:.1f}s), {args.tasks} tasks", flush=True)
    if "rephrase" in stages:
        shutil.rmtree(sc.base, ignore_errors=True)
    logs = sc.base / "logs"
    records = []
    for stage in stages:
        if stage == "rephrase":
            records += run_rephrase(sc, logs)
            for r in records:
                _progress(r)
        elif stage == "dedup" and "--tasks" in flags["dedup"] or stage == "mix" and "--rank" in flags["mix"]:
            shutil.rmtree(sc.dedup if stage == "dedup" else sc.mix, ignore_errors=True)  # a finished one: no-op
            records.append(run_dedup_tasks(sc, logs) if stage == "dedup" else run_mix_array(sc, logs, flags["mix"]))
            _progress(records[-1])
        else:
            for label, kind, cmds in sc.steps(stage, flags):
                name = re.sub(r"[^a-z]+", "-", label).strip("-")
                procs = run_measured(cmds, [logs / f"{name}-{i}.log" for i in range(len(cmds))],
                                     logs / "go" if kind == "array" else None, args.stage_timeout)
                records.append(summarize(label, kind, procs, sc.rows(stage), sc.documents))
                _progress(records[-1])
    if not args.keep:
        for d in (sc.out, sc.dedup, sc.compact, sc.mix):
            shutil.rmtree(d, ignore_errors=True)
    return {"denominator": denominator, "documents": sc.documents, "rows": sc.documents * len(PROMPTS),
            "tasks": args.tasks, "inputs": info, "stages": records}


# -- output -------------------------------------------------------------------------------------------------------


def _kind(rec: dict) -> str:
    return rec.get("form") or (f"array x{rec['processes']}" if rec["kind"] == "array" else "one process")


def scale_table(scale: dict) -> str:
    rows = [[r["stage"], _kind(r), r["failed"], fmt(r["rows"]), fmt(r["wall_s"], 1), fmt(r["peak_rss_mib"], 1),
             fmt(r["rows_per_s_per_process"]), fmt(r["rows_per_cpu_s"]), fmt(r["paper_hours"], 2)]
            for r in scale["stages"]]
    return table(["stage", "kind", "exit≠0", "rows", "wall s", "peak RSS MiB", "rows/s per process", "rows/CPU-s",
                  "paper h (100 tasks)"], rows)


def print_scale(s: dict):
    print(f"\n1/{s['denominator']:,}: {s['documents']:,} documents, {s['rows']:,} rows, {s['tasks']} tasks")
    print(scale_table(s))
    for r in s["stages"]:
        if r["stage"].startswith("rephrase"):
            print(f"{r['stage']}: {r['failed']} of {r['processes']} tasks exited non-zero"
                  + (f" ({'; '.join(r['errors'])[:300]})" if r["errors"] else "")
                  + f"; starts within {fmt(r.get('start_spread_s'), 3)}s; the stand-in server used "
                  f"{fmt(r['server_cpu_s'], 1)} CPU-s")
        elif "fixed_stages" in r:
            print(_dedup_note(r))
        elif "rounds" in r:
            print(_mix_note(r))


def _split(r: dict) -> str:
    return (f"{fmt(r.get('paper_hours_split'), 2)} h + {fmt(r.get('paper_hours_fixed'), 2)} h = "
            f"{fmt(r['paper_hours'], 2)} h")


def _dedup_note(r: dict) -> str:
    """How dedup's paper hours were made: its CPU over the tasks, plus the stages that do not split."""
    fixed: dict[int, list] = {}
    for f in r["fixed_stages"]:
        fixed.setdefault(f["tasks"], []).append(f)
    parts = "; ".join(f"{len(fs)} of {n} task{'s' if n > 1 else ''} ({fmt(sum(f['work_s'] for f in fs), 2)} s of "
                      "datatrove step time" + (f" / {n}" if n > 1 else "") + ")" for n, fs in sorted(fixed.items()))
    return (f"dedup ({r.get('form')}): paper h = its CPU ({fmt(r['cpu_s'], 1)} s, every process of it) / "
            f"{PAPER_TASKS} tasks + the stages whose task count does not grow with --tasks, one after another, "
            f"not divided ({parts or 'none found'}; {fmt(r.get('fixed_s'), 2)} s here): {_split(r)}"
            + (f"; {r['note']}" if r.get("note") else ""))


def _mix_note(r: dict) -> str:
    """The array mix's rounds, its output check and how its paper hours were made."""
    rounds = ", ".join(f"{x['round']}: {fmt(x['wall_s'], 1)} s, {fmt(x['cpu_s'], 1)} CPU-s" for x in r["rounds"])
    said = "; ".join(f"round {x['round']} task 0: {x['task_0_said']}" for x in r["rounds"][:-1] if x["task_0_said"])
    c = r["output_check"]
    check = (f"mix.json and train/ agree on {c['train_rows']:,} rows" if c["ok"] else f"NOT as documented: "
             f"{c['problem']}")
    return (f"mix ({r.get('form')}; rounds {rounds}): {check}; paper h = CPU / {PAPER_TASKS} tasks + the plan "
            f"(one task, {fmt(r.get('fixed_s'), 3)} s here): {_split(r) if c['ok'] else '-'}"
            + (f"\n  ({said[:400]})" if said else ""))


def compare(scales: list[dict]) -> list[dict]:
    """Per stage across the scales: peak RSS and wall, their ratios (largest ÷ smallest scale), and the paper's
    hours from the largest scale."""
    small, large = scales[0], scales[-1]
    by = {s["denominator"]: {r["stage"]: r for r in s["stages"]} for s in scales}
    out = []
    for stage, big in by[large["denominator"]].items():
        little = by[small["denominator"]].get(stage)
        ratio = (lambda k: big[k] / little[k] if little and big[k] and little[k] else None)  # noqa: E731
        out.append({"stage": stage, "kind": big["kind"], "paper_hours_marginal": _marginal(little, big, large),
                    "peak_rss_mib": {str(s["denominator"]): by[s["denominator"]].get(stage, {}).get("peak_rss_mib")
                                     for s in scales},
                    "rss_ratio": ratio("peak_rss_mib"), "wall_ratio": ratio("wall_s"),
                    "rows_ratio": ratio("rows"), "paper_hours": big["paper_hours"]})
    return out


def _marginal(little: dict | None, big: dict, large: dict) -> float | None:
    """The paper's hours from the cost of the rows the larger scale added (start-up and other fixed costs cancel):
    CPU-seconds per row for an array stage (/ 100 tasks), wall seconds per row for a one-process stage; plus, for
    an array stage with a part that does not split (dedup, mix: `fixed_s`), that part's seconds per row."""
    key = "cpu_s" if big["kind"] == "array" else "wall_s"
    if not little or little is big or big["failed"] or little["failed"] or None in (big[key], little[key]) \
            or big["rows"] <= little["rows"]:
        return None
    added = big["rows"] - little["rows"]
    per_row = max(big[key] - little[key], 0.0) / added / (PAPER_TASKS if big["kind"] == "array" else 1)
    if big.get("fixed_s") is not None and little.get("fixed_s") is not None:
        per_row += max(big["fixed_s"] - little["fixed_s"], 0.0) / added
    return big["rows"] * PAPER_DOCS / large["documents"] * per_row / 3600


def print_summary(scales: list[dict], summary: list[dict]):
    names = [f"1/{s['denominator']:,}" for s in scales]
    if len(scales) > 1:
        _print_ratios(scales, summary, names)
    array = sum(c["paper_hours"] or 0 for c in summary if c["kind"] == "array" and "rerun" not in c["stage"])
    one = sum(c["paper_hours"] or 0 for c in summary if c["kind"] == "one")
    missing = [c["stage"] for c in summary if c["paper_hours"] is None]
    print(f"the paper ({PAPER_ROWS / 1e9:.3f}B rows) from {names[-1]}, finephrase's own time: array stages "
          f"{array:.2f} h (on {PAPER_TASKS} tasks, a core each), one-process stages {one:.2f} h, in all "
          f"{array + one:.2f} h" + (f"; not extrapolated (failed): {', '.join(missing)}" if missing else ""))
    print("array stages: " + ", ".join(c["stage"] for c in summary if c["kind"] == "array")
          + "; one process: " + ", ".join(c["stage"] for c in summary if c["kind"] == "one"))


def _print_ratios(scales: list[dict], summary: list[dict], names: list[str]):
    print(f"\npeak RSS across scales ({names[-1]} ÷ {names[0]}: {scales[-1]['documents'] / scales[0]['documents']:g}x "
          f"the documents), and the paper ({PAPER_ROWS / 1e9:.3f}B rows, {PAPER_TASKS} tasks) from {names[-1]}:")
    rows = [[c["stage"], c["kind"]] + [fmt(c["peak_rss_mib"][str(s["denominator"])], 1) for s in scales]
            + [fmt(c["rss_ratio"], 2), fmt(c["wall_ratio"], 2), fmt(c["paper_hours"], 2),
               fmt(c["paper_hours_marginal"], 2)] for c in summary]
    print(table(["stage", "kind"] + [f"peak RSS MiB {n}" for n in names]
                + ["RSS ratio", "wall ratio", "paper h", "paper h (marginal)"], rows))


def main(argv=None) -> int:
    p = base_parser(NAME, __doc__.split("\n\n")[0])
    p.add_argument("--scales", default="10000,1000",
                   help="denominators of the paper's 339M documents, comma separated (10000,1000; --quick: 100000)")
    p.add_argument("--tasks", type=int, default=16, help="array tasks, started together (16)")
    p.add_argument("--stages", default=",".join(STAGES), help=f"a subset of {','.join(STAGES)} (all; a later stage "
                   "alone reads the outputs an earlier call left with --keep --workdir)")
    p.add_argument("--chunk-size", type=int, default=None, help="rephrase --chunk-size (its default: 1000)")
    p.add_argument("--max-concurrency", type=int, default=None, help="rephrase --max-concurrency (its default: 64)")
    p.add_argument("--server-processes", type=int, default=1, help="stand-in server processes (1)")
    p.add_argument("--stage-timeout", type=float, default=7200, help="seconds before a stage is killed (7200)")
    p.add_argument("--keep", action="store_true", help="keep each scale's outputs in --workdir")
    args = p.parse_args(argv)
    args.repeats = 1  # one run per scale: the scales are the comparison
    denominators = [100_000] if args.quick else sorted({int(s) for s in args.scales.split(",")}, reverse=True)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    if unknown := sorted(set(stages) - set(STAGES)):
        p.error(f"unknown stages: {', '.join(unknown)} (stages: {', '.join(STAGES)})")
    stages = [s for s in STAGES if s in stages]
    flags = {c: help_flags(c) for c in ("verify", "gate", "compact", "dedup", "mix")}
    print(machine_line(machine()))
    print(f"the paper: {PAPER_DOCS / 1e6:.0f}M documents x {len(PROMPTS)} prompts = {PAPER_ROWS / 1e9:.3f}B rows on "
          f"{PAPER_TASKS} tasks; here: " + ", ".join(f"1/{d:,}" for d in denominators)
          + f", {args.tasks} tasks; the stand-in server (zero_server.py --vary), not a model")
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="fp-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        scales = [run_scale(d, args, work, stages, flags) for d in denominators]
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    for s in scales:
        print_scale(s)
    summary = compare(scales)
    print_summary(scales, summary)
    failed = [f"1/{s['denominator']:,} {r['stage']}" for s in scales for r in s["stages"] if r["failed"]]
    if failed:
        print("stages with failed processes: " + "; ".join(failed))
    write_results(NAME, args, {"paper": {"documents": PAPER_DOCS, "rows": PAPER_ROWS, "tasks": PAPER_TASKS},
                               "prompts": list(PROMPTS), "tasks": args.tasks, "stages_run": stages,
                               "flags": {k: sorted(v) for k, v in flags.items()}, "scales": scales,
                               "summary": summary, "failed": failed})
    return 0


if __name__ == "__main__":
    sys.exit(main())
