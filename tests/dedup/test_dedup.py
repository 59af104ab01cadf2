"""`finephrase dedup`: planted exact and near duplicates go (with their reason and the row they duplicate), every
other row stays, and each input row ends up exactly once in OUT/<prompt>/ or OUT/removed/<prompt>/.

The fixture is a run folder built directly (rows, ledger, manifest shaped like `finephrase rephrase` writes them;
it passes `finephrase verify`), with texts made from random words so only the planted pairs are similar."""

from collections import Counter
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
from conftest import REPO, read_rows
from conftest import run_cli_here as run_cli  # the fast layer: these commands start no model
from consumer import assert_no_empty_parquet, load_every_config
from synthetic_runs import PROMPTS, build_dedup_run

from finephrase.pipeline.dedup import REMOVED_SCHEMA
from finephrase.store.schema import OUTPUT_SCHEMA

@pytest.fixture(scope="module")
def fixture_run(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("dedup")
    planted = build_dedup_run(root)
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

    planted = build_dedup_run(tmp_path, docs=20, chunk_size=10, copy_first_chunk=True)
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
