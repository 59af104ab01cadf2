"""`finephrase decontaminate`: planted benchmark items are found, exactly they, with the right benchmark.

Two benchmark files written here in two layouts (gsm8k-style jsonl: question, answer; mmlu-style parquet: question,
choices, answer index, every item opening with the same instruction), and a run folder built directly
(synthetic_runs.write_run: real ledger and manifest) whose generations carry some items verbatim (inside other
text, punctuation and case changed), some paraphrased past the n-gram (every fifth word replaced), some only the
shared instruction, and whose source documents carry some items the generations do not."""

import random
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
from conftest import assert_one_line_error, read_rows, write_parquet
from conftest import run_cli_here as run_cli
from synthetic_runs import PROMPTS, WORDS, sentence, text, write_run

from finephrase.contamination.benchmarks import parse_spec
from finephrase.contamination.index import NgramIndex
from finephrase.errors import UsageError
from finephrase.pipeline.decontam import REMOVED_SCHEMA
from finephrase.store.schema import OUTPUT_SCHEMA

DOCS = 100
INSTRUCTION = "Read the question below with care and then choose the one best answer from the options"


def _item(rng: random.Random) -> str:
    return " ".join(sentence(rng) for _ in range(2))


def _paraphrase(t: str) -> str:
    words = t.split(" ")
    return " ".join("banana" if k % 5 == 4 else w for k, w in enumerate(words))


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> dict:
    """The benchmark files, the run, and what was planted where: {row id: (benchmark, item)}."""
    root = tmp_path_factory.mktemp("decontam")
    rng = random.Random(7)
    qa = [{"question": _item(rng), "answer": f"{sentence(rng)} #### {rng.randint(1, 99)}"} for _ in range(150)]
    mc = [{"question": f"{INSTRUCTION}. {_item(rng)}", "choices": [sentence(rng) for _ in range(4)],
           "answer": rng.randint(0, 3)} for _ in range(150)]
    (root / "bench").mkdir()
    (root / "bench" / "qa.jsonl").write_bytes(b"\n".join(orjson.dumps(r) for r in qa) + b"\n")
    write_parquet(root / "bench" / "mc.parquet", mc)
    texts = {p: [text(rng) for _ in range(DOCS)] for p in PROMPTS}
    sources = [f"source document {i}: {sentence(rng)}" for i in range(DOCS)]
    sid = [f"<urn:uuid:{i:08d}-0000-0000-0000-000000000000>" for i in range(DOCS)]
    want = {}
    for i, k in [(10, 3), (11, 40), (12, 77), (13, 120), (14, 149)]:  # verbatim, mid-text, case and punctuation
        q = qa[k]["question"].upper().replace(" ", ",  ") if i == 11 else qa[k]["question"]
        texts["faq"][i] = f"{texts['faq'][i][:200]}\nQuestion: {q}\nAnswer: yes.\n{texts['faq'][i][200:]}"
        want[f"{sid[i]}/faq"] = ("qa", k)
    for i, k in [(20, 5), (21, 66), (22, 100)]:  # the question after the shared instruction, and a choice
        body = mc[k]["question"].removeprefix(f"{INSTRUCTION}. ")
        texts["table"][i] = f"| q | a |\n|---|---|\n| {body} | {mc[k]['choices'][1]} |"
        want[f"{sid[i]}/table"] = ("mc", k)
    for i, k in [(30, 8), (31, 9), (32, 10)]:
        texts["faq"][i] = f"Question: {_paraphrase(qa[k]['question'])}\nAnswer: {_paraphrase(qa[k]['answer'])}"
    texts["faq"][40] = f"{INSTRUCTION}. Question: what now?"  # boilerplate only
    texts["table"][41] = " ".join(["the"] * 30)  # degenerate
    for i, k in [(50, 11), (51, 12), (12, 77)]:  # in the source page: 50 and 51 only there, 12 in both
        sources[i] = f"A page that quotes: {qa[k]['question']} {qa[k]['answer']}"
    write_run(root, sources, texts, chunk_size=25)
    return {"root": root, "run": root / "run", "want": want, "qa": qa, "mc": mc,
            "benchmarks": [f"qa={root}/bench/qa.jsonl", f"mc={root}/bench/mc.parquet#mmlu"]}


def _decontaminate(planted, out: Path, *extra) -> None:
    r = run_cli("decontaminate", str(planted["run"]), "--benchmarks", *planted["benchmarks"], "--output", str(out),
                *extra)
    assert r.returncode == 0, r.stderr + r.stdout
    return r


def _rows(folder: Path) -> dict:
    return {r["id"]: r for p in PROMPTS for r in read_rows(folder / p)}


def test_exactly_the_planted_rows_are_removed_with_their_benchmark(planted, tmp_path):
    out = tmp_path / "clean"
    r = _decontaminate(planted, out, "--check-sources", "--tasks", "2")
    inputs, kept = _rows(planted["run"]), _rows(out)
    removed = {row["id"]: row for p in PROMPTS for row in read_rows(out / "removed" / p)}
    assert set(removed) == set(planted["want"])
    assert set(kept) | set(removed) == set(inputs) and not set(kept) & set(removed)
    for rid, row in removed.items():
        bench, item = planted["want"][rid]
        assert row["decontam_reason"] == f"contaminated:{bench}" and row["benchmark_item"] == item
        source_item = planted[bench][item]["question"].lower()
        assert row["matched_ngram"] in " ".join("".join(c if c.isalnum() else " " for c in source_item).split())
        assert row["source_overlap"] is (rid.startswith("<urn:uuid:00000012"))
        assert {k: row[k] for k in OUTPUT_SCHEMA.names} == inputs[rid]  # the row itself is unchanged
    for p in PROMPTS:
        for f in (out / p).glob("*.parquet"):
            assert pq.read_schema(f).equals(OUTPUT_SCHEMA)
        for f in (out / "removed" / p).glob("*.parquet"):
            assert pq.read_schema(f).equals(REMOVED_SCHEMA)
    record = orjson.loads((out / "manifest.json").read_bytes())["decontamination"]
    assert record["removed"] == {"faq": {"contaminated:qa": 5}, "table": {"contaminated:mc": 3}}
    assert record["source_overlap"] == {"faq": {"contaminated:qa": 1}, "table": {}}
    mc = next(b for b in record["benchmarks"] if b["name"] == "mc")
    assert mc["layout"] == "mmlu" and mc["boilerplate"] > 0 and mc["items"] == 150
    assert "faq: 100 rows, 95 kept, 5 removed (qa 5); the source page had an overlap for 1 of them" in r.stdout
    v = run_cli("verify", str(out))
    assert v.returncode == 0 and "OK: decontaminated output" in v.stdout, v.stdout + v.stderr
    again = _decontaminate(planted, out, "--check-sources", "--tasks", "2")
    assert "already decontaminated" in again.stdout


def test_audit_only_keeps_every_row_and_flags_the_planted(planted, tmp_path):
    out = tmp_path / "audit"
    _decontaminate(planted, out, "--audit-only")
    assert set(_rows(out)) == set(_rows(planted["run"]))
    flagged = {row["id"]: row for p in PROMPTS for row in read_rows(out / "flagged" / p)}
    assert set(flagged) == set(planted["want"]) and not (out / "removed").exists()
    assert all(row["source_overlap"] is None for row in flagged.values())  # sources not checked
    record = orjson.loads((out / "manifest.json").read_bytes())["decontamination"]
    assert record["flagged"]["faq"] == {"contaminated:qa": 5} and record["removed"]["faq"] == {}
    v = run_cli("verify", str(out))
    assert v.returncode == 0, v.stdout + v.stderr
    s = run_cli("status", str(out))
    assert "flagged  faq 5 (contaminated:qa 5)" in s.stdout, s.stdout


def test_a_tampered_output_fails_verify(planted, tmp_path):
    out = tmp_path / "clean"
    _decontaminate(planted, out)
    victim = sorted((out / "removed" / "faq").glob("*.parquet"))[0]
    victim.unlink()
    v = run_cli("verify", str(out))
    assert v.returncode == 1 and "neither kept nor removed" in v.stdout, v.stdout


def test_index_leaves_out_short_degenerate_and_boilerplate_ngrams():
    from finephrase.contamination.benchmarks import Benchmark

    rng = random.Random(3)
    items = [f"{INSTRUCTION} {' '.join(rng.choice(WORDS) for _ in range(15))}" for _ in range(40)]
    items += ["too short to index", "zero " * 20, "1 1 1 1 2 1 1 1 1 1 1 1"]
    index = NgramIndex.build([Benchmark("b", "x", "columns", ("q",), items)])
    info = index.info["benchmarks"][0]
    assert info["short_items"] == 1 and info["degenerate"] > 0 and info["boilerplate"] > 0
    found = index.find([INSTRUCTION, "zero " * 20, items[5].lower().replace(" ", " ... "), "nothing"])
    assert [(m.row, m.item) for m in found] == [(2, 5)]


def test_bad_specs_and_folders_are_one_line(planted, tmp_path):
    for spec, words in [("qa=", "expected NAME=PATH"), ("x=bench.csv", "not a .parquet"),
                        ("qa=/nope/qa.jsonl", "does not exist")]:
        with pytest.raises(UsageError, match=words):
            if "nope" in spec:
                from finephrase.contamination.benchmarks import load_benchmark

                load_benchmark(parse_spec(spec))
            else:
                parse_spec(spec)
    r = run_cli("decontaminate", str(planted["run"]), "--benchmarks",
                f"qa={planted['root']}/bench/qa.jsonl#question,nope", "--output", str(tmp_path / "o"))
    assert_one_line_error(r, "has no column nope")
    r = run_cli("decontaminate", str(planted["run"]), "--benchmarks", planted["benchmarks"][0],
                planted["benchmarks"][0], "--output", str(tmp_path / "o"))
    assert_one_line_error(r, "two benchmarks named")
    (tmp_path / "empty").mkdir()
    r = run_cli("decontaminate", str(tmp_path / "empty"), "--benchmarks", planted["benchmarks"][0], "--output",
                str(tmp_path / "o2"))
    assert_one_line_error(r, "not a finephrase run")


def test_compact_and_card_of_a_decontaminated_dedup_output(planted, tmp_path):
    """dedup -> decontaminate -> compact -> card: the card's counts add up and it reports the overlaps."""
    dedup = tmp_path / "dedup"
    assert run_cli("dedup", str(planted["run"]), "--output", str(dedup)).returncode == 0
    clean = tmp_path / "clean"
    r = run_cli("decontaminate", str(dedup), "--benchmarks", *planted["benchmarks"], "--output", str(clean))
    assert r.returncode == 0, r.stderr
    final = tmp_path / "final"
    r = run_cli("compact", str(clean), "--output", str(final))
    assert r.returncode == 0, r.stderr + r.stdout
    assert run_cli("verify", str(final)).returncode == 0
    r = run_cli("card", str(final), "--stdout")
    assert r.returncode == 0, r.stderr
    card = r.stdout
    assert "## Decontamination" in card and "| `qa` | gsm8k |" in card and "| `mc` | mmlu |" in card
    assert "| `faq` | 100 | 5 | 0 |" in card and "| `table` | 100 | 0 | 3 |" in card
    assert "removed (dedup) | removed (decontamination) |" in card


def test_the_pipeline_file_spells_out_the_clis_stages(planted, tmp_path):
    """pipelines/decontaminate.py writes the stages out by hand; the CLI builds them in finephrase/decontam/stages.py:
    the same steps, tasks and log folders, stage by stage."""
    import runpy

    from conftest import REPO

    from finephrase.decontam import DecontamPlan

    mod = runpy.run_path(str(REPO / "pipelines" / "decontaminate.py"), run_name="decontam_pipeline")
    plan = DecontamPlan(planted["run"], tmp_path / "out", mod["BENCHMARKS"], n=mod["NGRAM"], tasks=mod["TASKS"],
                        audit_only=mod["AUDIT_ONLY"], check_sources=mod["CHECK_SOURCES"])
    last, executors = mod["decontaminate"](plan), []
    while last is not None:
        executors.append(last)
        last = last.depends
    executors.reverse()
    stages = plan.stages()
    assert [s.name for s in stages] == ["index", "sources", "filter", "finalize"] and len(executors) == 4
    for e, stage in zip(executors, stages):
        assert [_settings(s) for s in e.pipeline] == [_settings(s) for s in stage.pipeline], stage.name
        assert e.world_size == stage.tasks and str(e.logging_dir.path) == stage.logging_dir, stage.name


def _settings(step) -> tuple:
    """A step's class and the plain settings it was built with (folders, prompts, flags, the index settings)."""
    plain = (str, int, float, bool, list, dict, type(None))
    return type(step).__name__, {k: v for k, v in vars(step).items()
                                 if isinstance(v, plain) and k not in ("stats", "_stats")}
