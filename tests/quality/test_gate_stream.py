"""`finephrase gate DIR` streamed: chunk by chunk along the ledgers (memory bounded by a chunk), in --workers
processes, and as an array (--rank/--tasks parts in DIR/.gate, then --merge). Every form gives the report of the
in-memory re-check it replaced (kept here as the reference: all rows, all sources in dicts)."""

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import REPO, assert_one_line_error, write_parquet
from conftest import run_cli_here as run_cli  # the fast layer: these commands start no model
from synthetic_runs import write_manifest

from finephrase.pipeline.readers.resumable import ResumableReader
from finephrase.prompts.library import load_prompt
from finephrase.quality.gate import QualityGate
from finephrase.quality.recheck import recheck
from finephrase.store.datafiles import parquet_files
from finephrase.store.ledger import Ledger

SOCKET = ("The socket module provides access to the BSD socket interface. It is available on all modern Unix "
          "systems, Windows and MacOS. Socket addresses are represented as tuples (host, port) for the AF_INET "
          "address family, and a socket is created with socket.socket().")
REGEX = ("The re module provides regular expression matching operations similar to those found in Perl. Both "
         "patterns and strings to be searched can be Unicode strings or 8-bit strings. A pattern is compiled with "
         "re.compile() and then matched against a string with match() or search().")
FAQ = {SOCKET: "Question: What does the socket module provide?\nAnswer: Access to the BSD socket interface.\n\n"
               "Question: How is an AF_INET socket address represented?\nAnswer: As a (host, port) tuple.",
       REGEX: "Question: What does the re module provide?\nAnswer: Regular expression matching operations similar "
              "to Perl.\n\nQuestion: How is a pattern compiled?\nAnswer: With re.compile(), then matched with match() "
              "or search()."}
PROMPTS = ("faq", "table")


def _generation(i: int, source: str, cheap: bool) -> tuple[str, str] | None:
    """(text, finish_reason) of document i's published row, None when the run rejected it. `cheap`: mostly
    truncated rows (rejected before any check that reads the source): a large run checked fast."""
    other = REGEX if source == SOCKET else SOCKET
    k = i % 9
    if cheap and k != 3:
        k = 7
    gen = {0: (FAQ[source], "stop"), 1: (FAQ[source], "stop"), 2: (FAQ[source], "stop"),
           3: ("The document is ready.", "stop"), 4: (source, "stop"), 5: (FAQ[other], "stop"),
           6: (FAQ[source].split("\n\n")[0], "stop"), 7: (FAQ[source], "length"), 8: None}[k]
    # each row's own text (the examples shown tell rows apart)
    return gen and (f"{gen[0]} #{i}" if k == 3 else f"Item {i}. {gen[0]}", gen[1])


def make_run(root: Path, docs: int, tasks: int = 2, chunk: int = 40, pad: int = 0, cheap: bool = False) -> Path:
    """A finished run folder as `finephrase rephrase` leaves it (ledgers with out-of-order chunk numbers, published
    files per chunk, manifest), with a leftover file no ledger line commits; no model needed."""
    filler = " More about the module and its functions." * pad
    src = write_parquet(root / "in" / "docs.parquet",
                        [{"id": f"doc-{i:06d}", "text": (SOCKET if i % 2 == 0 else REGEX) + filler} for i in
                         range(docs)], row_group_size=64)
    run = root / "run"
    reader = ResumableReader([str(src)])
    for rank in range(tasks):
        ranks_docs = list(reader.iter_documents(rank, tasks))
        spans = [ranks_docs[s:s + chunk] for s in range(0, len(ranks_docs), chunk)]
        numbers = list(range(len(spans)))
        numbers[:2] = numbers[1::-1]  # the first two chunks committed out of order (a straggler)
        ledger = Ledger(run, rank)
        for n, span in sorted(zip(numbers, spans), key=lambda x: x[0]):
            ledger.commit(n, *_chunk(span, cheap))
        ledger.mark_finished()
    write_manifest(run, src, PROMPTS, tasks)
    leftover = [{"id": "doc-000001/faq", "source_id": "doc-000001", "text": "The document is ready.",
                 "finish_reason": "stop"}]
    pq.write_table(pa.Table.from_pylist(leftover), run / "faq" / f"{tasks - 1:05d}_000999.parquet")
    return run


def _chunk(span: list, cheap: bool) -> tuple[dict, dict]:
    """One chunk's tables and ledger entry (Ledger.commit writes the files and the line)."""
    tables, counts = {}, {}
    for p in PROMPTS:
        rows = []
        for d in span:
            i = int(d.id.split("-")[1])
            gen = _generation(i, SOCKET if i % 2 == 0 else REGEX, cheap)
            if gen and (p == "faq" or i % 3 == 0):
                rows.append({"id": f"{d.id}/{p}", "source_id": d.id, "text": gen[0], "finish_reason": gen[1]})
        tables[p] = pa.Table.from_pylist(rows) if rows else pa.table({"id": pa.array([], pa.string())})
        counts[p] = len(rows)
    first, last = span[0].metadata["_fp_pos"]["read"], span[-1].metadata["_fp_pos"]
    return tables, {"first": first, "pos": last, "docs": len(span), "rows": counts}


def reference(root: Path, use_source: bool = True, examples: int = 2) -> dict:
    """The re-check as it was before streaming: every row and every source text of the run in memory."""
    cfg = orjson.loads((root / "manifest.json").read_bytes())["config"]
    names = list(cfg["prompts"])
    rows = {n: [r for f in parquet_files(root / n)
                for r in pq.read_table(f, columns=["source_id", "text", "finish_reason"]).to_pylist()] for n in names}
    sources = None
    if use_source:
        reader = ResumableReader(cfg["inputs"], text_column=cfg["text_column"], id_column=cfg["id_column"])
        sources = {d.id: d.text for r in range(cfg["tasks"]) for d in reader.iter_documents(r, cfg["tasks"])}
    gate, report = QualityGate(), {"source_checks": sources is not None, "prompts": {}}
    for n in names:
        reasons, shown = Counter(), {}
        for r in rows[n]:
            src = sources.get(r["source_id"]) if sources else None
            reason = gate.check(r["text"] or "", r["finish_reason"], prompt=load_prompt(n), source=src)
            if reason:
                reasons[reason] += 1
                if len(shown.setdefault(reason, [])) < examples:
                    shown[reason].append(" ".join((r["text"] or "").split())[:160])
        report["prompts"][n] = {"rows": len(rows[n]), "would_reject": sum(reasons.values()),
                                "reasons": dict(reasons.most_common()), "examples": shown}
    if not use_source:
        report["source_skipped"] = "--no-source"
    return report


def _same(a: dict, b: dict):
    """Equal, key order included (the printed report's order)."""
    assert orjson.dumps(a).decode() == orjson.dumps(b).decode()


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("gate"), 300, tasks=3)


def test_streamed_report_is_the_in_memory_one(run):
    rep = recheck(run)
    _same(rep, reference(run))
    faq = rep["prompts"]["faq"]
    assert rep["source_checks"] and {"copy", "off_topic", "non_answer:meta", "length"} <= set(faq["reasons"])
    assert faq["rows"] == sum(pq.ParquetFile(f).metadata.num_rows for f in parquet_files(run / "faq"))
    _same(recheck(run, use_source=False), reference(run, use_source=False))


def test_workers_give_the_one_process_report(run):
    one = run_cli("gate", run, "--json")
    two = run_cli("gate", run, "--json", "--workers", "2")
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    assert one.stdout == two.stdout
    _same(orjson.loads(one.stdout), reference(run))


def test_array_parts_merged_give_the_one_process_report(run, tmp_path):
    for rank in (0, 1):
        r = run_cli("gate", run, "--rank", rank, "--tasks", 2)
        assert r.returncode == 0 and f"task {rank} of 2" in r.stdout, r.stderr
    assert sorted(p.name for p in (run / ".gate").iterdir()) == ["part_00000_of_00002.json",
                                                                "part_00001_of_00002.json"]
    merged = run_cli("gate", run, "--merge", "--json")
    assert merged.returncode == 0, merged.stderr
    _same(orjson.loads(merged.stdout), reference(run))
    text = run_cli("gate", run, "--merge")
    assert text.stdout == run_cli("gate", run).stdout
    # `--rank auto` in a SLURM array task: its rank and the array's size from the environment (--array=0-1)
    env = {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "1",
           "SLURM_ARRAY_TASK_COUNT": "2"}
    r = run_cli("gate", run, "--rank", "auto", env=env)
    assert r.returncode == 0 and "task 1 of 2" in r.stdout, r.stderr
    assert orjson.loads(run_cli("gate", run, "--merge", "--json").stdout) == orjson.loads(merged.stdout)


def test_merge_refuses_missing_or_stale_parts(tmp_path):
    run = make_run(tmp_path, 60, tasks=2, chunk=10)
    assert_one_line_error(run_cli("gate", run, "--merge"), "no parts to merge")
    assert run_cli("gate", run, "--rank", 1, "--tasks", 3).returncode == 0
    assert_one_line_error(run_cli("gate", run, "--merge"), "has 1 of 3 parts: missing task(s) 0, 2")
    for rank in (0, 2):
        assert run_cli("gate", run, "--rank", rank, "--tasks", 3).returncode == 0
    assert run_cli("gate", run, "--merge").returncode == 0
    assert_one_line_error(run_cli("gate", run, "--merge", "--no-source"), "stale", "0, 1, 2 of 3")
    with open(run / ".ledger" / "rank_00000.jsonl", "ab") as f:  # the run changed since the parts were made
        f.write(b'{"finished": true}\n')
    assert_one_line_error(run_cli("gate", run, "--merge"), "stale")
    assert_one_line_error(run_cli("gate", run, "--rank", 3, "--tasks", 3), "outside 0..2")
    assert_one_line_error(run_cli("gate", run, "--rank", "auto"), "SLURM_ARRAY_TASK_ID")


def test_a_dedup_output_is_checked_file_by_file(run, tmp_path, monkeypatch):
    """No ledger ranges: a small one with its sources (one pass over the inputs), a large one without them."""
    out = tmp_path / "dedup"
    manifest = orjson.loads((run / "manifest.json").read_bytes())
    for p in PROMPTS:
        rows = [r for f in parquet_files(run / p) for r in pq.read_table(f).to_pylist()][::2]
        write_parquet(out / p / "00000.parquet", rows[:len(rows) // 2])
        write_parquet(out / p / "00001.parquet", rows[len(rows) // 2:])
    (out / "manifest.json").write_bytes(orjson.dumps({**manifest, "dedup": {"source": str(run)}}))
    _same(recheck(out), reference(out))
    from finephrase.quality.recheck import plan

    monkeypatch.setattr(plan, "FALLBACK_ROWS", 10)
    rep = recheck(out, workers=1)
    assert rep["source_checks"] is False and "dedup output of more than 10 rows" in rep["source_skipped"]
    ref = reference(out, use_source=False)
    assert rep["prompts"] == ref["prompts"]


def _peak_rss_mib(*args) -> float:
    """Peak RSS of `finephrase ARGS` (through a small wrapper: a child inherits its parent's peak)."""
    wrapper = ("import os, subprocess, sys; p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL); "
               "_, status, ru = os.wait4(p.pid, 0); assert os.waitstatus_to_exitcode(status) == 0; print(ru.ru_maxrss)")
    r = subprocess.run([sys.executable, "-c", wrapper, sys.executable, "-m", "finephrase.cli", *map(str, args)],
                       capture_output=True, text=True, cwd=REPO, env=dict(os.environ), timeout=1200)
    assert r.returncode == 0, r.stderr
    return int(r.stdout) / 1024


@pytest.mark.slow
def test_memory_is_bounded_by_a_chunk(tmp_path):
    """A run 10x larger re-checks in about the same memory (chunks of 100 documents of ~3 kB)."""
    small = make_run(tmp_path / "small", 3_000, tasks=2, chunk=100, pad=60, cheap=True)
    large = make_run(tmp_path / "large", 30_000, tasks=2, chunk=100, pad=60, cheap=True)
    peaks = {n: _peak_rss_mib("gate", r, "--json") for n, r in (("small", small), ("large", large))}
    assert peaks["large"] <= 1.2 * peaks["small"], peaks
