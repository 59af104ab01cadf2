"""Compaction: throughput (MB/s of parquet read per core, rows/s) and peak RSS of `finephrase compact`'s shard
writer, at a small and a 10x larger input, side by side in one run. Flat memory (one row group held, whatever the
input) means the RSS ratio stays near 1.

    python benchmarks/compact.py                 # 1 GB vs 10 GB of chunk files, 1 repeat (needs ~25 GB of disk)
    python benchmarks/compact.py --quick         # 20 MB vs 200 MB

The input is a folder of chunk files as a run writes them (OUTPUT_SCHEMA, zstd, 2,000 rows each) holding large
rows: ~6 KB texts made of the bundled sample's words, perturbed so that they compress like fresh text (about 3x)
rather than like the sample repeated. Each size is
compacted by its own process (shards of 500 MB, the default), with Arrow limited to one CPU thread; the process's
CPU time (user + sys) and peak RSS come from `os.wait4`. Throughput is parquet input bytes per CPU-second
(per core) and per wall second.

It also prints what the publishing plan in docs/publishing.md rests on: parquet bytes on disk per text character
of these rows, and characters per token of the SmolLM2 tokenizer (the packaged GGUF's) on the same texts, so
bytes per output token.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (  # noqa: E402
    base_parser,
    env_for_children,
    fmt,
    machine,
    machine_line,
    median,
    resolve_repeats,
    sample_texts,
    table,
    write_results,
)

NAME = "compact"
TARGET_MB_PER_CORE = 200.0
ROWS_PER_FILE = 2000

# Compacts the folder argv[1] into argv[2] with shards of 500 MB, Arrow on one thread; prints rows and seconds.
_CHILD = """
import sys, time
import pyarrow as pa
pa.set_cpu_count(1); pa.set_io_thread_count(1)
from pathlib import Path
from finephrase.compact.plan import DEFAULT_TARGET_BYTES, make_plan
from finephrase.compact.write import write_shard
src, out = Path(sys.argv[1]), Path(sys.argv[2])
import pyarrow.parquet as pq
files = sorted(p for p in src.glob("*.parquet"))
listing = {"faq": [(p.name, pq.ParquetFile(p).metadata.num_rows, p.stat().st_size) for p in files]}
t0 = time.perf_counter()
rows = 0
for shard in make_plan(src, listing, DEFAULT_TARGET_BYTES, None):
    rows += write_shard(src, out, shard.path, shard.files, shard.rows)["rows"]
print(rows, time.perf_counter() - t0)
"""


def _text_like(words: list[str], rng: random.Random, n_words: int = 1000) -> str:
    """~6 KB that compresses like fresh text: a window of the sample's words with half of them replaced by random
    words of the sample (the sample alone, 120 documents cycled, would repeat and compress 5x)."""
    start = rng.randrange(len(words) - n_words)
    return " ".join(w if rng.random() < 0.5 else words[rng.randrange(len(words))]
                    for w in words[start:start + n_words])


def make_input(folder: Path, target_bytes: int) -> dict:
    """Chunk files of large rows until `target_bytes` of parquet are written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from finephrase.store.schema import OUTPUT_SCHEMA

    words = " ".join(r["text"] for r in sample_texts(3000)).split(" ")
    rng = random.Random(0)
    folder.mkdir(parents=True, exist_ok=True)
    written = files = chars = 0
    while written < target_bytes:
        rows = []
        for i in range(ROWS_PER_FILE):
            n = files * ROWS_PER_FILE + i
            text = f"Question {n}: " + _text_like(words, rng)
            rows.append({"id": f"doc-{n:09d}/faq", "source_id": f"doc-{n:09d}", "prompt": "faq",
                         "prompt_hash": "eb2e853e243d37db", "text": text, "model": "SmolLM2-1.7B-Instruct",
                         "finish_reason": "stop", "input_tokens": 900 + n % 500, "cached_tokens": 0,
                         "output_tokens": len(text) // 4, "input_truncated": False, "language": "en",
                         "int_score": 3 + n % 3})
        chars += sum(len(r["text"]) for r in rows)
        path = folder / f"00000_{files:06d}.parquet"
        pq.write_table(pa.Table.from_pylist(rows, schema=OUTPUT_SCHEMA), path, compression="zstd")
        written += path.stat().st_size
        files += 1
    return {"files": files, "bytes": written, "rows": files * ROWS_PER_FILE, "text_chars": chars}


_WRAPPER = """
import os, subprocess, sys
p = subprocess.Popen(sys.argv[2:])
_, status, ru = os.wait4(p.pid, 0)
os.write(int(sys.argv[1]), f"{os.waitstatus_to_exitcode(status)} {ru.ru_maxrss} {ru.ru_utime + ru.ru_stime}".encode())
"""


def compact_once(src: Path, out: Path) -> dict:
    """One compaction in its own process (started through a small wrapper: a child spawned by this script, which
    holds the input listing, would inherit its peak RSS)."""
    shutil.rmtree(out, ignore_errors=True)
    r_fd, w_fd = os.pipe()
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", _WRAPPER, str(w_fd), sys.executable, "-c", _CHILD, str(src),
                             str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env_for_children(),
                            pass_fds=(w_fd,))
    os.close(w_fd)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    with os.fdopen(r_fd, "rb") as f:
        code, rss, cpu = f.read().decode().split()
    if proc.returncode or code != "0":
        raise RuntimeError(f"compaction failed: {stderr.decode()[-3000:]}")
    rows, seconds = stdout.decode().split()[-2:]
    return {"rows": int(rows), "write_s": float(seconds), "wall_s": wall, "cpu_s": float(cpu),
            "peak_rss_mib": int(rss) / 1024, "output_bytes": sum(p.stat().st_size for p in out.rglob("*.parquet"))}


def bytes_per_token(largest: dict) -> dict:
    """Parquet bytes per text character (of the largest input) and the tokenizer's characters per token."""
    from finephrase.serving import packaged_gguf_path
    from finephrase.serving.tokenizer import GGUFTokenizer

    texts = [r["text"] for r in sample_texts(3000)]  # real text: the tokenizer's characters per token
    tokens = sum(GGUFTokenizer(packaged_gguf_path()).count_batch(texts))
    chars_per_token = sum(len(t) for t in texts) / tokens
    per_char = largest["bytes"] / largest["text_chars"]
    return {"bytes_per_char": per_char, "chars_per_token": chars_per_token,
            "bytes_per_token": per_char * chars_per_token}


def main(argv=None) -> int:
    p = base_parser(NAME, __doc__.split("\n\n")[0])
    args = p.parse_args(argv)
    resolve_repeats(args)
    if args.repeats > 1 and not args.quick:
        print("note: each repeat compacts the 10 GB input again", file=sys.stderr)
    sizes = [20 * 10**6, 200 * 10**6] if args.quick else [10**9, 10 * 10**9]
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="fp-compact-"))
    results, rows_out = {"sizes": []}, []
    try:
        for size in sizes:
            src = work / f"in-{size}"
            made = make_input(src, size)
            runs = [compact_once(src, work / f"out-{size}") for _ in range(args.repeats)]
            cpu, wall = median([r["cpu_s"] for r in runs]), median([r["write_s"] for r in runs])
            rec = {**made, "runs": runs, "mb_per_cpu_s": made["bytes"] / 1e6 / cpu,
                   "mb_per_wall_s": made["bytes"] / 1e6 / wall, "rows_per_s": made["rows"] / wall,
                   "peak_rss_mib": median([r["peak_rss_mib"] for r in runs])}
            assert all(r["rows"] == made["rows"] for r in runs)
            results["sizes"].append(rec)
            rows_out.append([f"{made['bytes'] / 1e9:.2f} GB", f"{made['files']:,}", f"{made['rows']:,}",
                             fmt(rec["mb_per_cpu_s"]), fmt(rec["mb_per_wall_s"]), fmt(rec["rows_per_s"]),
                             fmt(rec["peak_rss_mib"])])
            shutil.rmtree(src, ignore_errors=True)
            shutil.rmtree(work / f"out-{size}", ignore_errors=True)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    results["disk"] = bytes_per_token(results["sizes"][-1])
    small, large = results["sizes"]
    results["rss_ratio"] = large["peak_rss_mib"] / small["peak_rss_mib"]
    results["mb_per_core"] = median([s["mb_per_cpu_s"] for s in results["sizes"]])
    results["target_mb_per_core"] = TARGET_MB_PER_CORE
    print(machine_line(machine()))
    print(table(["input", "files", "rows", "MB/s per core", "MB/s wall", "rows/s", "peak RSS MiB"], rows_out))
    print(f"peak RSS ratio (10x input): {results['rss_ratio']:.2f}; per-core throughput {results['mb_per_core']:.0f} "
          f"MB/s (target {TARGET_MB_PER_CORE:.0f})")
    d = results["disk"]
    print(f"on disk: {d['bytes_per_char']:.3f} parquet bytes per text character x {d['chars_per_token']:.2f} "
          f"characters per SmolLM2 token = {d['bytes_per_token']:.2f} bytes per output token")
    write_results(NAME, args, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
