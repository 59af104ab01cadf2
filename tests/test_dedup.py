"""`finephrase dedup`: planted exact and near duplicates go (with their reason and the row they duplicate), every
other row stays, and each input row ends up exactly once in OUT/<prompt>/ or OUT/removed/<prompt>/.

The fixture is a run folder built directly (rows, ledger, manifest shaped like `finephrase rephrase` writes them;
it passes `finephrase verify`), with texts made from random words so only the planted pairs are similar."""

import random
import time
from collections import Counter
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import REPO, read_rows, run_cli, write_parquet
from consumer import assert_no_empty_parquet, load_every_config

from finephrase.pipeline.dedup import REMOVED_SCHEMA
from finephrase.pipeline.readers.resumable import ResumableReader
from finephrase.run.runner import collect_counts, input_listing
from finephrase.store.ledger import Ledger
from finephrase.store.schema import OUTPUT_SCHEMA

PROMPTS = {"faq": "81b5ff7e8babfbbd", "table": "37f6ad1774e88919"}
DOCS = 100  # source documents: 100 rows per prompt, 200 in all
CHUNK = 50  # documents per committed chunk: two files per prompt

WORDS = """time year people way day man thing woman life child world school state family student group country
problem hand part place case week company system program question work government number night point home water
room mother area money story fact month lot right study book eye job word business issue side kind head house
service friend father power hour game line end member law car city community name president team minute idea
kid body information back parent face others level office door health person art war history party result
change morning reason research girl guy moment air teacher force education foot boy age policy process music
market sense nation plan college interest death experience effect use class control care field development role
effort rate heart drug show leader light voice wife police mind price report decision son view relationship town
road arm difference value building action model season society tax director position player record paper space
ground form event official matter center couple site project activity star table need court oil situation cost
industry figure street image phone data picture practice piece land product doctor wall patient worker news test
movie north love support technology step baby computer type attention film tree source organization hair window
evidence population truth song energy""".split()


def sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(8, 16))]
    return " ".join(words).capitalize() + rng.choice([".", ".", ".", "?"])


def text(rng: random.Random, n_words: int = 220) -> str:
    """A FAQ-looking text of random words: questions and answers, about n_words words."""
    parts, count = [], 0
    while count < n_words:
        q, a = sentence(rng), " ".join(sentence(rng) for _ in range(3))
        parts.append(f"Question: {q}\nAnswer: {a}")
        count += len(q.split()) + len(a.split())
    return "\n\n".join(parts)


def change_words(rng: random.Random, t: str, n: int = 2) -> str:
    """A near duplicate: n words replaced, far apart (about 1% of the words)."""
    words = t.split(" ")
    step = len(words) // (n + 1)
    for k in range(1, n + 1):
        i = k * step
        words[i] = "banana" if words[i] != "banana" else "cherry"
    return " ".join(words)


def exact_variant(t: str, how: int) -> str:
    """An exact duplicate after case folding and whitespace collapsing."""
    return [t.upper(), "  " + t.replace(" ", "   ") + "\n", t.replace("\n", " \n\t")][how % 3]


def build_run(root: Path, docs: int = DOCS, chunk_size: int = CHUNK, copy_first_chunk: bool = False) -> dict:
    """A finished two-prompt run in root/run with planted duplicates. Returns what was planted:
    {"exact": {id: original id}, "near": {id: original id}, "cross": (faq id, table id)}. With copy_first_chunk,
    the only duplicates are faq's second chunk: exact copies of its first."""
    rng = random.Random(1234)
    run = root / "run"
    source_ids = [f"<urn:uuid:{i:08d}-0000-0000-0000-000000000000>" for i in range(docs)]
    src = write_parquet(root / "in" / "docs.parquet",
                        [{"id": s, "text": f"source document {i}", "url": f"https://example.org/{i}"}
                         for i, s in enumerate(source_ids)])
    texts = {p: [text(rng) for _ in range(docs)] for p in PROMPTS}
    planted = {"exact": {}, "near": {}}
    if copy_first_chunk:
        for i in range(chunk_size, 2 * chunk_size):
            texts["faq"][i] = exact_variant(texts["faq"][i - chunk_size], i)
            planted["exact"][f"{source_ids[i]}/faq"] = f"{source_ids[i - chunk_size]}/faq"
    # the copies come after their originals (chunk 1), so the originals are the rows kept
    for p in PROMPTS if not copy_first_chunk else ():
        t = texts[p]
        for j, (copy, orig) in enumerate([(60, 3), (61, 10), (62, 10), (75, 55), (90, 20)]):  # 10: two copies
            t[copy] = exact_variant(t[orig], j)
            planted["exact"][f"{source_ids[copy]}/{p}"] = f"{source_ids[orig]}/{p}"
        for copy, orig in [(65, 30), (70, 40), (80, 51), (95, 5)]:
            t[copy] = change_words(rng, t[orig], n=2 + copy % 2)
            planted["near"][f"{source_ids[copy]}/{p}"] = f"{source_ids[orig]}/{p}"
    if not copy_first_chunk:
        texts["table"][85] = texts["faq"][15]  # same text under two prompts: a duplicate only with --scope run
        planted["cross"] = (f"{source_ids[15]}/faq", f"{source_ids[85]}/table")

    def row(i: int, p: str) -> dict:
        return {"id": f"{source_ids[i]}/{p}", "source_id": source_ids[i], "prompt": p, "prompt_hash": PROMPTS[p],
                "text": texts[p][i], "model": "SmolLM2-135M-Instruct", "finish_reason": "stop",
                "input_tokens": 300 + i, "output_tokens": len(texts[p][i].split()), "input_truncated": i % 7 == 0,
                "reasoning": None, "url": f"https://example.org/{i}", "dump": "CC-MAIN-2024-10",
                "date": "2024-02-21T10:00:00Z", "file_path": None, "language": "en", "language_score": 0.93,
                "token_count": 500 + i, "score": 3.1, "int_score": 3,
                "metadata": orjson.dumps({"source": "fixture", "n": i}).decode() if i % 3 == 0 else None}

    ledger = Ledger(run, 0)
    for chunk, start in enumerate(range(0, docs, chunk_size)):
        ids = range(start, start + chunk_size)
        tables = {p: pa.Table.from_pylist([row(i, p) for i in ids], schema=OUTPUT_SCHEMA) for p in PROMPTS}
        ledger.commit(chunk, tables, {
            "docs": chunk_size, "rows": {p: chunk_size for p in PROMPTS}, "rejects": {}, "filtered": {},
            "input_tokens": sum(sum(t["input_tokens"].to_pylist()) for t in tables.values()),
            "output_tokens": sum(sum(t["output_tokens"].to_pylist()) for t in tables.values()),
            "pos": {"file_index": 0, "offset": start + chunk_size, "read": start + chunk_size}})
    ledger.mark_finished({"docs": docs})
    reader = ResumableReader([str(src)], text_column="text", id_column="id", limit=-1)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    manifest = {
        "finephrase_version": "0.1.0", "created_at": now, "status": "finished",
        "config": {"inputs": [str(src)], "input_files": input_listing(reader.files), "text_column": "text",
                   "id_column": "id", "limit": -1,
                   "selection": {"where": [], "languages": [], "min_chars": None, "max_chars": None,
                                 "sample_rate": None, "token_budget": None, "filters": []},
                   "prompts": PROMPTS, "backend": "embedded", "model": "SmolLM2-135M-Instruct",
                   "context_length": 2048,
                   "sampling": {"temperature": 0.2, "top_p": 0.9, "top_k": None, "seed": 1, "max_tokens": 512},
                   "tasks": 1},
        "prompts": [{"name": p, "family": "finephrase", "version": 1, "hash": h, "description": p, "system": None,
                     "template": "{{document}}", "extract_tag": None} for p, h in PROMPTS.items()],
        "sessions": [], "software": {"python": "3.11", "finephrase": "0.1.0", "datatrove": "0.10.1"},
        "counts": collect_counts(run), "updated_at": now,
    }
    (run / "manifest.json").write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    return planted


@pytest.fixture(scope="module")
def fixture_run(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("dedup")
    planted = build_run(root)
    return root / "run", planted


def input_rows(run: Path) -> dict[str, dict]:
    return {r["id"]: r for p in PROMPTS for r in read_rows(run / p)}


def check_output(run: Path, out: Path) -> tuple[dict, dict]:
    """Layout, schemas, counts, exactly-once; returns (kept rows by id, removed rows by id)."""
    inputs = input_rows(run)
    kept, removed = {}, {}
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    dd = manifest["dedup"]
    for p in PROMPTS:
        for f in sorted((out / p).glob("*.parquet")):
            assert pq.read_schema(f).remove_metadata() == OUTPUT_SCHEMA, f
        for f in sorted((out / "removed" / p).glob("*.parquet")):
            assert pq.read_schema(f).remove_metadata() == REMOVED_SCHEMA, f
        k, r = read_rows(out / p), read_rows(out / "removed" / p)
        assert all(x["prompt"] == p for x in k + r)
        assert dd["kept"][p] == len(k) == manifest["counts"]["rows"][p]
        assert dd["input"][p] == sum(1 for x in inputs.values() if x["prompt"] == p)
        reasons = Counter(x["dedup_reason"] for x in r)
        assert dd["removed"][p] == {"exact": reasons["exact"], "near": reasons["near"]}
        for x in k:
            assert x["id"] not in kept
            kept[x["id"]] = x
        for x in r:
            assert x["id"] not in removed and x["id"] not in kept
            removed[x["id"]] = x
    assert set(kept) | set(removed) == set(inputs) and not set(kept) & set(removed)
    for i, x in kept.items():  # rows are unchanged, metadata JSON included
        assert x == inputs[i]
    for i, x in removed.items():
        assert {c: x[c] for c in inputs[i]} == inputs[i]
    assert manifest["config"] == orjson.loads((run / "manifest.json").read_bytes())["config"]
    assert dd["source"] == str(run.resolve())
    assert manifest["counts"]["output_tokens"] == sum(x["output_tokens"] for x in kept.values())
    return kept, removed


def test_planted_duplicates_go_the_rest_stays(fixture_run, tmp_path):
    run, planted = fixture_run
    out = tmp_path / "dedup"
    r = run_cli("dedup", run, "--output", out, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert len([x for x in r.stdout.splitlines() if x.startswith("[")]) == 2 * 7 + 1  # a line per stage
    kept, removed = check_output(run, out)
    want = {i: ("exact", o) for i, o in planted["exact"].items()} | {i: ("near", o) for i, o in planted["near"].items()}
    assert {i: (x["dedup_reason"], x["duplicate_of"]) for i, x in removed.items()} == want
    assert all(o in kept for _, o in want.values())
    assert set(planted["cross"]) <= set(kept)  # scope prompt: the same text under two prompts stays
    m = orjson.loads((out / "manifest.json").read_bytes())["dedup"]
    assert m["scope"] == "prompt" and m["params"]["num_buckets"] == 14
    assert m["removed"] == {"faq": {"exact": 5, "near": 4}, "table": {"exact": 5, "near": 4}}
    assert "total" in r.stdout and "removed" in r.stdout

    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset("parquet", data_files=str(out / "faq" / "*.parquet"), split="train",
                               cache_dir=str(tmp_path / "hf"))
    assert ds.num_rows == m["kept"]["faq"] and ds.features["id"].dtype == "string"
    assert not list(out.glob(".dedup/prompt/*/exact_kept"))  # the intermediate copy is gone
    assert_no_empty_parquet(out)
    assert run_cli("card", out).returncode == 0
    assert load_every_config(out, tmp_path / "hf") == {"all": len(kept), "faq": m["kept"]["faq"],
                                                       "table": m["kept"]["table"], "removed": len(removed)}

    # the same command again: done, nothing rewritten
    before = {f: f.stat().st_mtime_ns for f in out.rglob("*.parquet")}
    r = run_cli("dedup", run, "--output", out, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "already deduplicated" in r.stdout
    assert {f: f.stat().st_mtime_ns for f in out.rglob("*.parquet")} == before


def test_a_task_whose_rows_all_go_writes_no_file(tmp_path):
    """faq's second chunk is an exact copy of its first; with two dedup tasks, one task keeps no faq row at all: it
    writes no file (an empty one would break `datasets`), the counts still add up and every config loads."""
    from finephrase.dedup import DedupPlan

    planted = build_run(tmp_path, docs=20, chunk_size=10, copy_first_chunk=True)
    run, out = tmp_path / "run", tmp_path / "dedup"
    DedupPlan(run, out, tasks=2).run_local(workers=1, echo=lambda line: None)
    kept, removed = check_output(run, out)
    pairs = [{copy, orig} for copy, orig in planted["exact"].items()]  # which one of a pair stays may vary
    assert all(len(pair & set(removed)) == 1 for pair in pairs) and len(removed) == len(pairs)
    assert all(x["dedup_reason"] == "exact" for x in removed.values())
    assert assert_no_empty_parquet(out) == len(list(out.glob("*/*.parquet"))) + len(list(out.glob("removed/*/*")))
    assert len(list((out / "faq").glob("*.parquet"))) == 1 and len(list((out / "table").glob("*.parquet"))) == 2
    assert run_cli("card", out).returncode == 0
    assert load_every_config(out, tmp_path / "hf") == {"all": 30, "faq": 10, "table": 20, "removed": 10}


def test_scope_run_also_across_prompts(fixture_run, tmp_path):
    from finephrase.dedup import DedupPlan

    run, planted = fixture_run
    out = tmp_path / "dedup-run"
    lines = []
    DedupPlan(run, out, scope="run", tasks=2).run_local(workers=1, echo=lines.append)
    assert len(lines) == 7 + 1
    kept, removed = check_output(run, out)
    faq_id, table_id = planted["cross"]
    assert faq_id in kept and removed[table_id]["dedup_reason"] == "exact"
    assert removed[table_id]["duplicate_of"] == faq_id
    # with two tasks, which row of a group is kept may differ; one per group stays, the others point to it
    groups = {}
    for reason in ("exact", "near"):
        for copy, orig in planted[reason].items():
            groups.setdefault(orig, {orig}).add(copy)
    for members in groups.values():
        stay = members & set(kept)
        assert len(stay) == 1, members
        for m in members - stay:
            assert removed[m]["duplicate_of"] in members
    assert set(removed) == {m for g in groups.values() for m in g} - set(kept) | {table_id}

    # other settings into the same OUT_DIR: refused in one line, unless --overwrite
    r = run_cli("dedup", run, "--output", out, "--scope", "prompt", timeout=120)
    assert r.returncode == 2 and "other settings" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_bad_run_dir_is_one_line(fixture_run, tmp_path):
    run, _ = fixture_run
    unfinished = tmp_path / "unfinished"
    (unfinished / "faq").mkdir(parents=True)
    m = orjson.loads((run / "manifest.json").read_bytes())
    (unfinished / "manifest.json").write_bytes(orjson.dumps({**m, "status": "running"}))
    (tmp_path / "empty").mkdir()
    cases = [
        ((tmp_path / "missing", "--output", tmp_path / "o1"), "does not exist"),
        ((tmp_path / "empty", "--output", tmp_path / "o2"), "not a finephrase run"),
        ((unfinished, "--output", tmp_path / "o3"), "not a finished run"),
        ((run, "--output", run), "not RUN_DIR itself"),
        ((run, "--output", run / "dedup"), "inside RUN_DIR"),
    ]
    for args, message in cases:
        r = run_cli("dedup", *args, timeout=120)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert r.stderr.startswith("error: ") and message in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not (tmp_path / "o3").exists() and not (run / "dedup").exists()


def test_verify_flag_runs_finephrase_verify(fixture_run, tmp_path):
    from finephrase.dedup import check_run

    run, _ = fixture_run
    assert check_run(run, full_verify=True)["status"] == "finished"  # the fixture is a proper run


def test_interrupted_dedup_resumes_without_duplicates(fixture_run, tmp_path):
    import shutil

    from finephrase.dedup import DedupPlan, run_stage

    run, planted = fixture_run
    out = tmp_path / "dedup"
    chain = DedupPlan(run, out, tasks=2).chains()[0]
    for stage in chain:
        run_stage(stage, 1, stage.name)
    # killed at the end of the faq chain's last stage: its files are written, its completion markers are not
    shutil.rmtree(Path(chain[-1].logging_dir) / "completions")
    lines = []
    DedupPlan(run, out, tasks=2).run_local(workers=1, echo=lines.append)
    assert all("done before" in line for line in lines[:6]) and "done before" not in lines[6]
    kept, removed = check_output(run, out)
    assert set(removed) == set(planted["exact"]) | set(planted["near"])


def _shape(steps: list) -> list:
    """A step list's classes and the settings that decide the output (folders, configs), comparable by value."""
    keys = ("output_folder", "data_folder", "input_folder", "config", "prompts", "reason", "name")
    out = []
    for s in steps:
        attrs = {}
        for k in keys:
            v = getattr(s, k, None)
            if v is not None:
                attrs[k] = getattr(v, "path", v) if k != "config" else repr(v)
        out.append((type(s).__name__, attrs))
    return out


def test_the_pipeline_file_spells_out_the_clis_stages(fixture_run, tmp_path):
    """pipelines/dedup.py writes each stage's list out by hand; the CLI builds them in finephrase/dedup/stages.py:
    the same steps, tasks and log folders, stage by stage (so editing one without the other is caught)."""
    import runpy

    from finephrase.dedup import DedupPlan

    run, _ = fixture_run
    mod = runpy.run_path(str(REPO / "pipelines" / "dedup.py"), run_name="dedup_pipeline")
    plan = DedupPlan(run, tmp_path / "out", scope="prompt", tasks=mod["TASKS"], minhash=mod["MINHASH"])
    for unit, stages in zip(plan.units(), plan.chains()):
        last, executors = mod["dedup_unit"](str(plan.run), str(plan.output), unit), []
        while last is not None:
            executors.append(last)
            last = last.depends
        executors.reverse()
        assert len(executors) == len(stages) == 7
        for e, stage in zip(executors, stages):
            assert _shape(e.pipeline) == _shape(stage.pipeline), stage.name
            assert e.world_size == stage.tasks and str(e.logging_dir.path) == stage.logging_dir, stage.name
