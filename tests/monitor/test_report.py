"""`finephrase report`: PNG plots and report.md, checked against counts read from the parquet files."""

import importlib.util
import re
import sys
from collections import Counter
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
from conftest import small_rows, write_parquet
from conftest import run_cli as run_in_subprocess  # a run: its own process, as users start it
from conftest import run_cli_here as run_cli  # the fast layer: the other commands start no model
from fakeserver import FakeServer

needs_matplotlib = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                                      reason="matplotlib is not installed (pip install 'finephrase[report]')")

PNGS = ("output_length.png", "input_vs_output.png", "rejects.png", "compliance.png", "throughput.png",
        "occupancy.png")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# -- helpers --------------------------------------------------------------------------------------------------


def table(md: str, heading: str) -> list[dict]:
    """The markdown table under `## heading` as a list of {column: cell}."""
    section = md.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = [x for x in section.splitlines() if x.startswith("|")]
    if not lines:
        return []
    cells = [[c.strip().strip("`") for c in x.strip("|").split("|")] for x in lines]
    return [dict(zip(cells[0], row)) for row in cells[2:]]


def num(cell: str) -> int:
    return int(cell.replace(",", ""))


def parquet_counts(out: Path, prompts: list[str]) -> dict:
    """Rows, output tokens and rejects per reason, straight from the parquet files."""
    rows, tokens, rejects, rejected_tokens = {}, {}, Counter(), 0
    for p in prompts:
        if (out / p).is_dir():
            t = pq.read_table(out / p, columns=["output_tokens"])
            rows[p], tokens[p] = t.num_rows, sum(t["output_tokens"].to_pylist())
        else:
            rows[p], tokens[p] = 0, 0
        if (out / "rejects" / p).is_dir():
            t = pq.read_table(out / "rejects" / p, columns=["reject_reason", "output_tokens"])
            rejects.update((p, r) for r in t["reject_reason"].to_pylist())
            rejected_tokens += sum(n or 0 for n in t["output_tokens"].to_pylist())
    filtered = Counter()
    if (out / "filtered").is_dir():
        filtered.update(pq.read_table(out / "filtered", columns=["filter_reason"])["filter_reason"].to_pylist())
    return {"rows": rows, "tokens": tokens, "rejects": rejects, "filtered": filtered,
            "rejected_tokens": rejected_tokens}


def check_pngs(folder: Path):
    import matplotlib.image as mpimg

    for name in PNGS:
        path = folder / name
        assert path.is_file(), name
        assert path.read_bytes()[:8] == PNG_SIGNATURE, name
        img = mpimg.imread(path)
        h, w = img.shape[:2]
        assert 600 <= w <= 1400 and 350 <= h <= 1600, (name, w, h)
        assert img.std() > 0.01, f"{name} is blank"


def check_markdown(md: str, counts: dict, prompts: list[str]):
    per_prompt = {r["prompt"]: r for r in table(md, "Per prompt")}
    assert list(per_prompt) == prompts
    for p in prompts:
        assert num(per_prompt[p]["rows"]) == counts["rows"][p], p
        assert num(per_prompt[p]["output tokens"]) == counts["tokens"][p], p
        assert num(per_prompt[p]["rejects"]) == sum(n for (q, _), n in counts["rejects"].items() if q == p), p
    rejects = {(r["prompt"], r["reason"]): num(r["rejects"]) for r in table(md, "Rejects by reason")}
    assert rejects == dict(counts["rejects"])
    if not counts["rejects"]:
        assert "No rejects." in md
    if counts["filtered"]:
        assert {r["reason"]: num(r["documents"]) for r in table(md, "Filtered documents")} == dict(counts["filtered"])
    total = sum(counts["tokens"].values())
    assert f"output {total:,}" in md
    if counts["rejected_tokens"]:
        assert f"rejected generations: {counts['rejected_tokens']:,} more output tokens" in md
    else:
        assert "rejected generations:" not in md
    for name in PNGS:
        assert f"]({name})" in md  # relative links


def _jsonl(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


# -- a real run ---------------------------------------------------------------------------------------------


@needs_matplotlib
def test_report_of_a_real_run(tmp_path, llama_endpoint):
    src = write_parquet(tmp_path / "in" / "docs.parquet", small_rows(4, chars=300))
    out = tmp_path / "out"
    r = run_in_subprocess("rephrase", src, "--prompt", "faq,table", "--output", out, "--backend", "endpoint",
                "--endpoint-url", llama_endpoint, "--max-tokens", "32", "--context-length", "1024",
                "--max-attempts", "1",
                "--chunk-size", "2", "--seed", "0")
    assert r.returncode == 0, r.stderr
    r = run_cli("report", out)
    assert r.returncode == 0, r.stderr
    folder = out / "report"
    assert str(folder / "report.md") in r.stdout
    check_pngs(folder)
    md = (folder / "report.md").read_text()
    counts = parquet_counts(out, ["faq", "table"])
    check_markdown(md, counts, ["faq", "table"])
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    assert f"`{manifest['config']['model']}` (backend `endpoint`)" in md
    for name, h in manifest["config"]["prompts"].items():
        assert f"`{name}` (`{h}`)" in md
    assert "**documents**: 4 read" in md
    assert re.search(r"\*\*lifetime throughput\*\*: [\d,.]+ output tokens/s", md)
    # the run still verifies with the report folder inside it
    assert run_cli("verify", out).returncode == 0


# -- stand-in server: rejects, filtered, an empty prompt, two tasks, two sessions ---------------------------------


@needs_matplotlib
def test_report_with_rejects_filtered_empty_prompt_and_two_sessions(tmp_path):
    # a prompt whose every request overflows: 0 rows, only context_overflow rejects
    overflow = tmp_path / "prompts" / "always_overflow.toml"
    overflow.parent.mkdir()
    overflow.write_text('name = "always_overflow"\nfamily = "test"\nversion = 1\n'
                        'template = "OVERFLOW {{document}}"\n')
    prompts = ["faq", "always_overflow"]
    for f in range(2):
        recs = []
        for i in range(12):
            text = f"file {f} document {i} about lists, dicts and sets in Python"
            if i % 5 == 1:
                text += " OVERFLOW"
            if i % 5 == 3:
                text += " FLAKY"
            recs.append({"id": f"f{f}d{i}", "text": text, "int_score": 1 if i % 6 == 5 else 3})
        _jsonl(tmp_path / "in" / f"part{f}.jsonl", recs)
    out = tmp_path / "out"
    args = ["rephrase", tmp_path / "in", "--prompt", f"faq,{overflow}", "--output", out, "--backend", "endpoint",
            "--where", "int_score >= 2", "--tasks", "2", "--workers", "1", "--chunk-size", "3",
            "--max-concurrency", "2", "--max-retries", "0"]
    # one worker runs task 0, then task 1; the server dies after the preflight request and task 0's 20 requests
    # (10 selected documents x 2 prompts), so task 1 fails at once and runs again in a second session
    dying = FakeServer(die_after=21).start()
    try:
        first = run_in_subprocess(*args, "--endpoint-url", dying.url)
    finally:
        dying.stop()
    assert first.returncode != 0 and "unreachable" in first.stderr, first.stderr
    assert b'"finished":true' in (out / ".ledger" / "rank_00000.jsonl").read_bytes()
    assert not (out / ".ledger" / "rank_00001.jsonl").exists()
    fake = FakeServer().start()
    try:
        r = run_in_subprocess(*args, "--endpoint-url", fake.url)
    finally:
        fake.stop()
    assert r.returncode == 0, r.stderr

    folder = tmp_path / "plots"
    r = run_cli("report", out, "--out", folder)
    assert r.returncode == 0, r.stderr
    assert not (out / "report").exists()
    check_pngs(folder)
    md = (folder / "report.md").read_text()
    counts = parquet_counts(out, prompts)
    assert counts["rows"]["always_overflow"] == 0 and counts["rows"]["faq"] > 0
    assert {r for _, r in counts["rejects"]} == {"context_overflow", "http_500"}
    assert counts["filtered"] == {"where:int_score>=2": 4}
    check_markdown(md, counts, prompts)
    assert "No rows for always_overflow" in md
    assert "2 session(s)" in md and "between sessions not counted" in md
    per_task = table(md, "Per task")
    assert [r["task"] for r in per_task] == ["0", "1"]
    assert sum(num(r["documents"]) for r in per_task) == 24


@needs_matplotlib
def test_report_of_a_single_chunk_without_rejects(tmp_path):
    from finephrase.monitor.report import build_report

    src = _jsonl(tmp_path / "docs.jsonl", [{"id": f"d{i}", "text": f"plain document {i}"} for i in range(3)])
    out = tmp_path / "out"
    fake = FakeServer().start()
    try:
        r = run_in_subprocess("rephrase", src, "--prompt", "faq", "--output", out, "--backend", "endpoint",
                    "--endpoint-url", fake.url)
    finally:
        fake.stop()
    assert r.returncode == 0, r.stderr
    md_path = build_report(out)
    assert md_path == out / "report" / "report.md"
    check_pngs(out / "report")
    md = md_path.read_text()
    check_markdown(md, parquet_counts(out, ["faq"]), ["faq"])
    assert "No rejects." in md and "1 chunk committed" in md
    assert "A single chunk" in md


@needs_matplotlib
def test_throughput_timing_across_sessions(tmp_path):
    """Each chunk's interval starts at the previous commit of the same session, or at the session's start: the
    idle time between sessions is neither a chunk's duration nor active time."""
    from finephrase.monitor.report import build_report, load_run, timing

    t = 1_800_000_000.0
    (tmp_path / "manifest.json").write_bytes(orjson.dumps({
        "status": "finished", "config": {"prompts": {"faq": "0123456789abcdef"}, "model": "m", "backend": "endpoint",
                                         "tasks": 1, "sampling": {"max_tokens": 64}},
        "sessions": [{"started_at": "2027-01-15T08:00:00Z"}, {"started_at": "2027-01-15T08:01:40Z"}]}))
    ledger = tmp_path / ".ledger"
    ledger.mkdir()
    lines = [{"chunk": i, "docs": 2, "rows": {}, "rejects": {}, "output_tokens": tok, "files": [],
              "committed_at": t + c} for i, (c, tok) in enumerate([(10, 100), (20, 200), (110, 50), (130, 300)])]
    (ledger / "rank_00000.jsonl").write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    (ledger / "rank_00000.progress.json").write_bytes(orjson.dumps({
        "updated_at": t + 131, "sessions": [{"started_at": t, "ended_at": t + 25},
                                            {"started_at": t + 100, "ended_at": None}]}))
    tm = timing(load_run(tmp_path))
    assert tm.intervals[0] == [(t, t + 10, 100, 0), (t + 10, t + 20, 200, 0), (t + 100, t + 110, 50, 0),
                               (t + 110, t + 130, 300, 0)]
    assert tm.periods == [(t, t + 25), (t + 100, t + 131)]
    assert tm.active_s == 56 and tm.idle_s == 75 and tm.lifetime == pytest.approx(650 / 56)
    md = build_report(tmp_path).read_text()
    check_pngs(tmp_path / "report")
    assert "11.6 output tokens/s (650 tokens over 56.0 s" in md and "75.0 s between sessions not counted" in md
    assert "No rows for faq" in md and "No rejects." in md


# -- errors ---------------------------------------------------------------------------------------------------


def test_not_a_run(tmp_path):
    (tmp_path / "something.txt").write_text("hello")
    for target in (tmp_path, tmp_path / "missing"):
        r = run_cli("report", target)
        assert r.returncode == 2
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and "not a finephrase run" in lines[0], r.stderr
        assert "Traceback" not in r.stderr
    assert not (tmp_path / "report").exists()


def test_without_matplotlib(tmp_path):
    import subprocess

    (tmp_path / "manifest.json").write_text('{"config": {"prompts": {}}}')
    code = ("import sys; sys.modules['matplotlib'] = None  # import matplotlib -> ImportError\n"
            "from finephrase.cli import main; sys.exit(main(sys.argv[1:]))")
    r = subprocess.run([sys.executable, "-c", code, "report", str(tmp_path)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "error: finephrase report needs matplotlib: pip install 'finephrase[report]'"]
