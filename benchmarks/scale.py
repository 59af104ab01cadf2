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
verify / gate when they take --rank (else one process). One-process stages: dedup, card, publish --dry-run, mix
(and verify / gate without --rank). Extrapolation to the paper: array stage hours = paper rows / (rows per
CPU-second of one process) / 100 (each task with a core of its own); one-process stage hours = paper rows /
(rows/s) with no division. Rows are the stage's own (rephrase and verify: documents x prompts; dedup and gate:
the run's published rows; compact, card, publish: the rows in the dedup output; mix: the synthetic rows plus the
source documents), scaled to the paper by 339M / documents.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (ZeroServer, base_parser, env_for_children, finephrase_cmd, fmt,  # noqa: E402
                     machine, machine_line, sample_texts, table, write_results)

NAME = "scale"
PROMPTS = ("faq", "math", "table", "tutorial")
PAPER_DOCS = 339_000_000
PAPER_ROWS = PAPER_DOCS * len(PROMPTS)
PAPER_TASKS = 100
FILES_PER_TASK = 4  # finephrase shards whole files from 4 per task (ResumableReader.shard)
STAGES = ("rephrase", "verify", "dedup", "compact", "card", "gate", "publish", "mix")
INPUT_VERSION = 1  # bump when the generated documents change (the cache key)

# Runs argv[3:] once the file argv[2] exists ("-": at once); writes "R" to the descriptor argv[1] when ready,
# then "<exit code> <ru_maxrss KiB> <user+sys s> <start> <end>" (wall clock) when the command has exited.
_WRAPPER = """
import os, subprocess, sys, time
fd, go = int(sys.argv[1]), sys.argv[2]
os.write(fd, b"R")
while go != "-" and not os.path.exists(go):
    time.sleep(0.002)
t0 = time.time()
p = subprocess.Popen(sys.argv[3:])
_, status, ru = os.wait4(p.pid, 0)
os.write(fd, f"{os.waitstatus_to_exitcode(status)} {ru.ru_maxrss} {ru.ru_utime + ru.ru_stime} {t0} {time.time()}"
         .encode())
"""


# -- input documents --------------------------------------------------------------------------------------------


def _vocabulary():
    """The bundled sample's words (lowercase) and their frequencies, and 8 written forms of each: plain,
    sentence end, capitalised, both, and the same ending a paragraph (index = word + V * form)."""
    import numpy as np
    from collections import Counter

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


# -- measured processes ---------------------------------------------------------------------------------------------


def _last_error(log: Path) -> str | None:
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return None
    errors = [ln for ln in lines if re.search(r"error|Error|ERROR|refus|not a finephrase", ln)]
    return (errors or lines or [None])[-1]


def run_measured(cmds: list[list], logs: list[Path], barrier: Path | None, timeout: float) -> list[dict]:
    """Start every command (through the wrapper), all at once on `barrier` if given; wait for all of them.
    Each: exit code, peak RSS (MiB), CPU s, start and end (wall clock), and its last error line if it failed."""
    go = str(barrier) if barrier else "-"
    if barrier:
        barrier.unlink(missing_ok=True)
    started = []
    for cmd, log in zip(cmds, logs):
        log.parent.mkdir(parents=True, exist_ok=True)
        r_fd, w_fd = os.pipe()
        with open(log, "wb") as out:
            proc = subprocess.Popen([sys.executable, "-c", _WRAPPER, str(w_fd), go, *map(str, cmd)], stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env_for_children(),
                                    pass_fds=(w_fd,), start_new_session=True)
        os.close(w_fd)
        started.append((proc, r_fd, log))
    for _, r_fd, _ in started:  # every wrapper is up and polling
        os.read(r_fd, 1)
    if barrier:
        barrier.touch()
    deadline = time.monotonic() + timeout
    return [_collect(proc, r_fd, log, deadline) for proc, r_fd, log in started]


def _collect(proc: subprocess.Popen, r_fd: int, log: Path, deadline: float) -> dict:
    try:
        proc.wait(max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()
    with os.fdopen(r_fd, "rb") as f:
        report = f.read().decode().split()
    if len(report) != 5:
        return {"exit": proc.returncode or -9, "peak_rss_mib": None, "cpu_s": None, "start": None, "end": None,
                "error": "killed: over --stage-timeout" if proc.returncode else _last_error(log)}
    code, rss, cpu, t0, t1 = int(report[0]), int(report[1]), float(report[2]), float(report[3]), float(report[4])
    return {"exit": code, "peak_rss_mib": round(rss / 1024, 1), "cpu_s": round(cpu, 2), "start": t0, "end": t1,
            "error": _last_error(log) if code else None}


def help_flags(command: str) -> set[str]:
    """The long options `finephrase COMMAND --help` lists (others may be adding some right now)."""
    r = subprocess.run(finephrase_cmd(command, "--help"), capture_output=True, text=True, env=env_for_children())
    return set(re.findall(r"--[a-z][a-z-]+", r.stdout))


# -- rows ---------------------------------------------------------------------------------------------------------


def parquet_rows(folder: Path, sub: str = "") -> int:
    """Rows in the parquet files under folder/sub (hidden folders such as .dedup/ and .ledger/ left out)."""
    import pyarrow.parquet as pq

    root = folder / sub if sub else folder
    if not root.is_dir():
        return 0
    return sum(pq.ParquetFile(p).metadata.num_rows for p in root.rglob("*.parquet")
               if not any(part.startswith(".") for part in p.relative_to(folder).parts))


def published_rows(folder: Path) -> int:
    return sum(parquet_rows(folder, p) for p in PROMPTS)


def run_rows(folder: Path) -> int:
    """Rows of a run: published and rejected (documents x prompts, less the filtered)."""
    return published_rows(folder) + parquet_rows(folder, "rejects")


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
            "mix": finephrase_cmd("mix", "--synthetic", self.compact, "--source", self.inputs, "--output", self.mix),
        }[stage]])]

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


def summarize(stage: str, kind: str, procs: list[dict], rows: int, documents: int) -> dict:
    """One stage's record: the stage's wall (first start to last exit), the largest peak RSS of its processes,
    rows/s per process (rows / the processes' summed walls), rows per CPU-second, and the paper's hours."""
    timed = [p for p in procs if p["start"] is not None]
    failed = sum(1 for p in procs if p["exit"] != 0)
    rec = {"stage": stage, "kind": kind, "processes": len(procs), "failed": failed, "rows": rows,
           "exit_codes": [p["exit"] for p in procs], "errors": sorted({p["error"] for p in procs if p["error"]}),
           "wall_s": None, "peak_rss_mib": None, "cpu_s": None, "rows_per_s_per_process": None,
           "rows_per_cpu_s": None, "paper_hours": None, "processes_detail": procs}
    if not timed:
        return rec
    wall = max(p["end"] for p in timed) - min(p["start"] for p in timed)
    walls = sum(p["end"] - p["start"] for p in timed)
    cpu = sum(p["cpu_s"] for p in timed)
    rec.update(wall_s=round(wall, 2), peak_rss_mib=max(p["peak_rss_mib"] for p in timed), cpu_s=round(cpu, 2),
               start_spread_s=round(max(p["start"] for p in timed) - min(p["start"] for p in timed), 3),
               rows_per_s_per_process=rows / walls if walls else None, rows_per_cpu_s=rows / cpu if cpu else None)
    paper_rows = rows * PAPER_DOCS / documents
    # an array stage with some tasks failed is still timed on the rows the others wrote (its exit≠0 says so)
    if rows and (failed == 0 or kind == "array" and failed < len(procs)):
        rec["paper_hours"] = (paper_rows / rec["rows_per_cpu_s"] / PAPER_TASKS if kind == "array"
                              else paper_rows / (rows / wall)) / 3600
    return rec


def run_rephrase(sc: Scale, logs: Path) -> list[dict]:
    """--tasks rephrase processes started at the same instant against the stand-in server; the ranks that
    failed are then started once more together (as a requeue would), recorded as a stage of their own."""
    a = sc.args
    records = []
    with ZeroServer(processes=a.server_processes, vary=True) as server:
        sc.url = server.url
        ranks = list(range(sc.tasks))
        for attempt in ("rephrase", "rephrase (rerun of failed tasks)"):
            cpu0, before = server.cpu_seconds(), run_rows(sc.out)
            prefix = "rephrase" if attempt == "rephrase" else "rephrase-rerun"
            procs = run_measured([sc.rephrase(r) for r in ranks], [logs / f"{prefix}-{r}.log" for r in ranks],
                                 logs / "go", a.stage_timeout)
            for r, p in zip(ranks, procs):
                p["rank"] = r
            rec = summarize(attempt, "array", procs, run_rows(sc.out) - before, sc.documents)
            rec["server_cpu_s"] = round(server.cpu_seconds() - cpu0, 2)
            records.append(rec)
            ranks = [p["rank"] for p in procs if p["exit"] != 0]
            if not ranks or attempt != "rephrase":
                break
    return records


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
    return f"array x{rec['processes']}" if rec["kind"] == "array" else "one process"


def scale_table(scale: dict) -> str:
    rows = [[r["stage"], _kind(r), r["failed"], fmt(r["rows"]), fmt(r["wall_s"], 1), fmt(r["peak_rss_mib"], 1),
             fmt(r["rows_per_s_per_process"]), fmt(r["rows_per_cpu_s"]), fmt(r["paper_hours"], 2)]
            for r in scale["stages"]]
    return table(["stage", "kind", "exit≠0", "rows", "wall s", "peak RSS MiB", "rows/s per process", "rows/CPU-s",
                  "paper h (100 tasks)"], rows)


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
    CPU-seconds per row for an array stage (/ 100 tasks), wall seconds per row for a one-process stage."""
    key = "cpu_s" if big["kind"] == "array" else "wall_s"
    if not little or little is big or big["failed"] or little["failed"] or None in (big[key], little[key]) \
            or big["rows"] <= little["rows"]:
        return None
    per_row = max(big[key] - little[key], 0.0) / (big["rows"] - little["rows"])
    paper_rows = big["rows"] * PAPER_DOCS / large["documents"]
    return paper_rows * per_row / (PAPER_TASKS if big["kind"] == "array" else 1) / 3600


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
    flags = {c: help_flags(c) for c in ("verify", "gate", "compact")}
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
        print(f"\n1/{s['denominator']:,}: {s['documents']:,} documents, {s['rows']:,} rows, {s['tasks']} tasks")
        print(scale_table(s))
        for r in s["stages"]:
            if r["stage"].startswith("rephrase"):
                print(f"{r['stage']}: {r['failed']} of {r['processes']} tasks exited non-zero"
                      + (f" ({'; '.join(r['errors'])[:300]})" if r["errors"] else "")
                      + f"; starts within {fmt(r.get('start_spread_s'), 3)}s; the stand-in server used "
                      f"{fmt(r['server_cpu_s'], 1)} CPU-s")
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
