"""`finephrase score`: a real fastText model trained here scores a run's rows and their source documents; the
columns, scores.json, the card and the report agree with scoring the same texts directly.

The run (synthetic_runs.write_run: real ledger and manifest) is written from low-quality source pages; its faq
rows are high-quality text (rephrasing raised the score), its table rows low-quality (it did not)."""

import random

import orjson
import pytest
from classifiers import hq_text, lq_text, train_hq_lq
from conftest import assert_one_line_error, read_rows
from conftest import run_cli_here as run_cli
from synthetic_runs import write_run

from finephrase.scoring import FastTextScorer

DOCS = 60


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("score")
    model = train_hq_lq(root)
    rng = random.Random(5)
    sources = [lq_text(rng, 30) for _ in range(DOCS)]
    texts = {"faq": [hq_text(rng, 30) for _ in range(DOCS)], "table": [lq_text(rng, 30) for _ in range(DOCS)]}
    run = write_run(root, sources, texts, chunk_size=20)
    return {"root": root, "run": run, "model": model, "sources": sources}


def _check_columns(setup, out):
    scorer = FastTextScorer(setup["model"])
    by_source = dict(zip([f"<urn:uuid:{i:08d}-0000-0000-0000-000000000000>" for i in range(DOCS)],
                         scorer.score(setup["sources"])))
    for p in ("faq", "table"):
        rows = {r["id"]: r for r in read_rows(setup["run"] / p)}
        scored = read_rows(out / p)
        assert sorted(r["id"] for r in scored) == sorted(rows)  # every row exactly once
        direct = dict(zip(rows, scorer.score([r["text"] for r in rows.values()])))
        for r in scored:
            assert r["score_q"] == pytest.approx(direct[r["id"]], abs=1e-6)
            assert r["score_q_source"] == pytest.approx(by_source[r["source_id"]], abs=1e-6)


def test_rows_and_sources_scored_in_buckets_and_summarized(setup, tmp_path):
    """In process, with the rows spread over 3 buckets of source_id (a run of ~6M rows would have 3)."""
    from finephrase.score import ScorePlan

    plan = ScorePlan(setup["run"], tmp_path / "s", [f"q=fasttext:{setup['model']}"], sources=True, tasks=2)
    plan.buckets = 3
    result = plan.run_local(workers=1, echo=lambda line: None)
    _check_columns(setup, tmp_path / "s")
    assert len(list((tmp_path / "s" / "faq").glob("*.parquet"))) == 3
    faq, table = result["prompts"]["faq"]["q"], result["prompts"]["table"]["q"]
    assert faq["rows"]["n"] == table["rows"]["n"] == DOCS and faq["delta"]["n"] == DOCS
    assert faq["rows"]["mean"] > 0.9 and faq["sources"]["mean"] < 0.1 and faq["delta"]["mean"] > 0.8
    assert abs(table["delta"]["mean"]) < 0.05
    assert faq["rows"]["quantiles"]["p10"] <= faq["rows"]["quantiles"]["p90"]
    assert sum(faq["rows"]["histogram"]["counts"]) == faq["rows"]["sample_size"]


def test_the_command_card_and_report(setup, tmp_path):
    out = tmp_path / "scores"
    r = run_cli("score", str(setup["run"]), "--classifiers", f"q=fasttext:{setup['model']}", "--sources",
                "--output", str(out))
    assert r.returncode == 0, r.stderr + r.stdout
    faq = next(line for line in r.stdout.splitlines() if line.startswith("faq q: 60 rows, mean "))
    assert float(faq.split("mean ")[1][:5]) > 0.9 and "change +0.9" in faq or "change +1.0" in faq, r.stdout
    _check_columns(setup, out)
    again = run_cli("score", str(setup["run"]), "--classifiers", f"q=fasttext:{setup['model']}", "--sources",
                    "--output", str(out))
    assert "already scored" in again.stdout
    card = run_cli("card", str(setup["run"]), "--stdout", "--scores", str(out))
    assert card.returncode == 0, card.stderr
    summary = orjson.loads((out / "scores.json").read_bytes())["prompts"]["faq"]["q"]
    assert "## Quality scores" in card.stdout
    assert f"| `faq` | `q` | 60 | {summary['sources']['mean']:.3f} | {summary['rows']['mean']:.3f} | " \
           f"{summary['delta']['mean']:+.3f} |" in card.stdout, card.stdout
    rep = run_cli("report", str(setup["run"]), "--out", str(tmp_path / "rep"), "--scores", str(out))
    assert rep.returncode == 0, rep.stderr
    assert (tmp_path / "rep" / "scores.png").stat().st_size > 1000
    assert "| `faq` | `q` |" in (tmp_path / "rep" / "report.md").read_text()


def test_bad_classifiers_are_one_line(setup, tmp_path):
    r = run_cli("score", str(setup["run"]), "--classifiers", "Q=fasttext:x.bin", "--output", str(tmp_path / "o"))
    assert_one_line_error(r, "NAME")
    r = run_cli("score", str(setup["run"]), "--classifiers", f"q=fasttext:{tmp_path}/none.bin", "--output",
                str(tmp_path / "o2"))
    assert_one_line_error(r, "none.bin")
    r = run_cli("score", str(setup["run"]), "--classifiers", "q=fasttext:a.bin", "q=fasttext:b.bin", "--output",
                str(tmp_path / "o3"))
    assert_one_line_error(r, "two are named q")
    r = run_cli("card", str(setup["run"]), "--stdout", "--scores", str(tmp_path))
    assert_one_line_error(r, "scores.json")
