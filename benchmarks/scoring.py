"""Quality scoring: documents/s of the fastText scorer (a DCLM-shaped classifier) and of the ScoreAnnotator step, per
process, against the target of 20,000 documents/s; and the process's peak RSS.

    python benchmarks/scoring.py                 # 20,480 documents of ~300 and of ~1,000 words, 3 repeats
    python benchmarks/scoring.py --quick         # 2,048 documents of each, 1 repeat, a 200,000-row hash table
    python benchmarks/scoring.py --lengths 300,1000,3000 --docs 10240 --bucket 2000000

The model is trained here (no download), in a child process (so its training memory is not this process's
peak), on `--train-lines` generated lines (4,000; quick 1,000) of two classes, `__label__hq` (the bundled sample's
words at their frequencies) and `__label__cc` (half of them, half made-up words), and saved to the workdir. Its
shape is DCLM's classifier (mlfoundations/fasttext-oh-eli5, `openhermes_reddit_eli5_vs_rw_v2_bigram_200k_train
.bin`, the model that built DCLM-Baseline): supervised, softmax over 2 labels, dim 100 (fastText's default: that
model's own arguments say 100, not 256; its 2.39 GB file is (3.78M words + 2M buckets) x 100 floats), word bigrams
(wordNgrams 2), a 2,000,000-row hash table for the bigrams (bucket), no character n-grams. The cost of a prediction
is one row of the input matrix per word and per bigram, summed (100 floats each), then 2 dot products: what
matters for speed is the rows' memory traffic. The bigram rows are looked up at random in an 800 MB table, as in
DCLM's model; the word rows come from a vocabulary of ~30,000 words rather than 3.78M (their table is small and
stays cached), so DCLM's own file will be somewhat slower per word on a machine with small caches, and needs
2.4 GB of memory rather than ~0.8 GB. `--quick` uses a 200,000-row table (80 MB), only to finish fast.
fastText's predictor holds Python's GIL: threads do not add throughput (processes, i.e. datatrove tasks, do).

Documents: ~L words each (L +-10%; `--lengths`, default 300,1000) of the sample's words at their frequencies
(half the documents with a fifth of made-up words, as the `cc` class), in sentences and paragraphs (newlines,
which the scorer turns into spaces). Measured, per length and repeat, interleaved: `FastTextScorer.score` on
batches of 1,024 texts, and the `ScoreAnnotator` step over datatrove Documents (batches of 1,024, the same scorer
object): documents/s (medians over `--repeats`), CPU s / wall s, and the ratio to 20,000 documents/s.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import base_parser, fmt, machine, machine_line, median, sample_texts, table, write_results  # noqa: E402

NAME = "scoring"
TARGET = 20_000  # documents/s per process (the target)
BATCH = 1024
DIM, WORD_NGRAMS, BUCKET, QUICK_BUCKET = 100, 2, 2_000_000, 200_000
MADE_UP = 50_000  # made-up words of the cc class


# -- generated text ------------------------------------------------------------------------------------------------


def vocabulary(seed: int = 0):
    """(sample words, their probabilities in hq text, in cc text, made-up words, their probabilities) as numpy
    arrays: cc text uses the sample's words more evenly (frequencies ** 0.5) and made-up words at Zipf's law."""
    from collections import Counter

    import numpy as np

    counts = Counter(w.lower() for w in re.findall(r"[A-Za-z]{2,}", " ".join(r["text"] for r in sample_texts())))
    words = np.array(list(counts), dtype=object)
    p = np.array([counts[w] for w in words], dtype=float)
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    made_up = np.array(["".join(rng.choice(letters, rng.integers(3, 10))) for _ in range(MADE_UP)], dtype=object)
    zipf = 1 / np.arange(1, MADE_UP + 1)
    return words, p / p.sum(), p**0.5 / (p**0.5).sum(), made_up, zipf / zipf.sum()


def documents(rng, n: int, words: int, vocab, cc_in: str = "odd", paragraphs: bool = True) -> list[str]:
    """n texts of ~`words` words (+-10%), hq or cc (`cc_in`: "odd" (every other text), "all" or "none"): hq text
    has the sample's words at their frequencies, cc text has them more evenly and a fifth of made-up words;
    sentences of ~14 words, paragraphs of ~6 sentences."""
    import numpy as np

    sample, p_hq, p_cc, made_up, p_made_up = vocab
    lengths = rng.integers(int(words * 0.9), int(words * 1.1) + 1, n)
    out = []
    for i, length in enumerate(lengths):
        cc = cc_in == "all" or (cc_in == "odd" and i % 2)
        tokens = sample[rng.choice(len(sample), size=length, p=p_cc if cc else p_hq)]
        if cc:
            odd = rng.random(length) < 0.2
            tokens[odd] = made_up[rng.choice(len(made_up), size=int(odd.sum()), p=p_made_up)]
        ends = np.flatnonzero(rng.random(length) < 1 / 14)
        for e in ends:
            tokens[e] = tokens[e] + (".\n\n" if paragraphs and rng.random() < 1 / 6 else ".")
        out.append(" ".join(tokens.tolist()).replace("\n\n ", "\n\n"))
    return out


# -- the model -----------------------------------------------------------------------------------------------------


def train_model(path: str, lines: int, bucket: int, seed: int = 0) -> None:
    """Train and save a DCLM-shaped classifier (run in a child process)."""
    import fasttext
    import numpy as np

    rng = np.random.default_rng(seed)
    vocab = vocabulary(seed)
    half = lines // 2
    hq = documents(rng, half, 200, vocab, cc_in="none", paragraphs=False)
    cc = documents(rng, lines - half, 200, vocab, cc_in="all", paragraphs=False)
    data = Path(path).with_suffix(".train.txt")
    rows = [f"__label__hq {t}" for t in hq] + [f"__label__cc {t}" for t in cc]
    rng.shuffle(rows)
    data.write_text("\n".join(rows) + "\n")
    model = fasttext.train_supervised(input=str(data), dim=DIM, wordNgrams=WORD_NGRAMS, bucket=bucket, minn=0, maxn=0,
                                      loss="softmax", epoch=10, lr=0.5, minCount=1, thread=1, verbose=0, seed=seed)
    model.save_model(path)
    data.unlink()


def trained_model(work: Path, lines: int, bucket: int) -> tuple[Path, float]:
    path = work / f"dclm-shaped-{bucket}-{lines}.bin"
    t0 = time.perf_counter()
    if not path.exists():
        proc = multiprocessing.get_context("spawn").Process(target=train_model, args=(str(path), lines, bucket))
        proc.start()
        proc.join()
        if proc.exitcode != 0 or not path.exists():
            raise SystemExit(f"training the model failed (exit {proc.exitcode})")
    return path, time.perf_counter() - t0


# -- measuring -----------------------------------------------------------------------------------------------------


def rss_mib() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def timed(fn) -> tuple[float, float]:
    """(wall s, CPU s) of fn()."""
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def time_scorer(scorer, texts: list[str]) -> tuple[float, float]:
    def go():
        for i in range(0, len(texts), BATCH):
            scorer.score(texts[i:i + BATCH])

    return timed(go)


def time_step(step, texts: list[str]) -> tuple[float, float]:
    from datatrove.data import Document

    docs = [Document(text=t, id=f"doc-{i}") for i, t in enumerate(texts)]  # made outside the timing
    count = 0

    def go():
        nonlocal count
        for _ in step.run(iter(docs)):
            count += 1

    out = timed(go)
    assert count == len(texts), (count, len(texts))
    return out


def measure(args, scorer, corpora: dict[int, list[str]]) -> dict:
    from finephrase.pipeline.score import ScoreAnnotator

    runs = {n: {"scorer": [], "step": []} for n in corpora}
    for rep in range(args.repeats):
        for n, texts in corpora.items():
            for what, fn in (("scorer", time_scorer), ("step", time_step)):
                target = scorer if what == "scorer" else ScoreAnnotator({"dclm": scorer}, batch_size=BATCH)
                wall, cpu = fn(target, texts)
                runs[n][what].append({"seconds": wall, "cpu_s": cpu, "docs_per_s": len(texts) / wall})
            s, t = runs[n]["scorer"][-1], runs[n]["step"][-1]
            print(f"  run {rep + 1}, ~{n:,} words: scorer {s['docs_per_s']:,.0f} docs/s, step "
                  f"{t['docs_per_s']:,.0f} docs/s (load {os.getloadavg()[0]:.1f})", flush=True)
    out = {}
    for n, texts in corpora.items():
        row = {"docs": len(texts), "words_per_doc": sum(len(t.split()) for t in texts) / len(texts),
               "chars_per_doc": sum(map(len, texts)) / len(texts)}
        for what in ("scorer", "step"):
            rs = runs[n][what]
            dps = median([r["docs_per_s"] for r in rs])
            row[what] = {"docs_per_s": dps, "us_per_doc": 1e6 / dps, "cpu_over_wall":
                         median([r["cpu_s"] / r["seconds"] for r in rs]), "over_target": dps / TARGET,
                         "words_per_s": dps * row["words_per_doc"], "runs": rs}
        row["step_over_scorer"] = row["step"]["docs_per_s"] / row["scorer"]["docs_per_s"]
        out[str(n)] = row
    return out


def print_table(res: dict) -> None:
    rows = []
    for n, r in res["lengths"].items():
        s, t = r["scorer"], r["step"]
        rows.append([f"~{int(n):,}", fmt(r["words_per_doc"], 0), fmt(r["docs"]), fmt(s["docs_per_s"]),
                     fmt(t["docs_per_s"]), fmt(r["step_over_scorer"], 2), fmt(s["over_target"], 2),
                     fmt(t["over_target"], 2), fmt(t["us_per_doc"], 1), fmt(s["words_per_s"] / 1e6, 2),
                     fmt(t["cpu_over_wall"], 2)])
    print(table(["words/doc", "mean words", "docs", "scorer docs/s", "step docs/s", "step / scorer",
                 f"scorer / {TARGET // 1000}k", f"step / {TARGET // 1000}k", "step us/doc", "scorer M words/s",
                 "step CPU/wall"], rows))
    m = res["memory"]
    print(f"peak RSS {fmt(m['peak_rss_mib'], 0)} MiB (the model: +{fmt(m['model_rss_mib'], 0)} MiB when loaded; "
          f"file {fmt(res['model']['file_mib'], 0)} MiB; the documents and Python: {fmt(m['before_model_mib'], 0)} "
          f"MiB before it)")
    print(f"target: {TARGET:,} documents/s per process (a ratio >= 1 meets it)")


def main(argv=None) -> int:
    ap = base_parser(NAME, __doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=None, help="documents per length (20,480; quick 2,048)")
    ap.add_argument("--lengths", default="300,1000", help="words per document, comma separated (300,1000)")
    ap.add_argument("--train-lines", type=int, default=None, help="labelled training lines (4,000; quick 1,000)")
    ap.add_argument("--bucket", type=int, default=None, help=f"the model's hash-table rows ({BUCKET:,}, as DCLM's; "
                    f"quick {QUICK_BUCKET:,})")
    args = ap.parse_args(argv)
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.docs = args.docs or (2048 if args.quick else 20_480)
    args.train_lines = args.train_lines or (1000 if args.quick else 4000)
    args.bucket = args.bucket or (QUICK_BUCKET if args.quick else BUCKET)
    lengths = [int(x) for x in args.lengths.split(",")]
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="fp-bench-scoring-"))
    work.mkdir(parents=True, exist_ok=True)
    print(machine_line(machine()))
    try:
        res = run(args, lengths, work)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    print_table(res)
    write_results(NAME, args, res)
    return 0


def run(args, lengths: list[int], work: Path) -> dict:
    import numpy as np

    from finephrase.scoring import FastTextScorer

    path, train_s = trained_model(work, args.train_lines, args.bucket)
    rng = np.random.default_rng(1)
    vocab = vocabulary(0)
    corpora = {n: documents(rng, args.docs, n, vocab) for n in lengths}
    before = rss_mib()
    scorer = FastTextScorer(path)
    load_s, _ = timed(lambda: scorer.labels)
    model_rss = rss_mib() - before if before is not None else None
    words = len(scorer._loaded().get_words())
    print(f"model: dim {DIM}, wordNgrams {WORD_NGRAMS}, bucket {args.bucket:,}, labels {', '.join(scorer.labels)}, "
          f"{words:,} words, {args.train_lines:,} training lines; {path.stat().st_size / 2**20:,.0f} MiB, trained "
          f"in {train_s:.1f}s", flush=True)
    probe = scorer.score(corpora[lengths[0]][:BATCH])
    plain, odd = median(probe[0::2]), median(probe[1::2])
    print(f"{args.docs:,} documents of ~{', ~'.join(f'{n:,}' for n in lengths)} words, batches of {BATCH:,}, "
          f"{args.repeats} repeat(s); model loaded in {load_s:.1f}s; median P(hq) {plain:.2f} (hq documents) vs "
          f"{odd:.2f} (cc documents)", flush=True)
    lengths_res = measure(args, scorer, corpora)
    return {"target_docs_per_s": TARGET, "batch_size": BATCH, "lengths": lengths_res,
            "model": {"dim": DIM, "word_ngrams": WORD_NGRAMS, "bucket": args.bucket, "labels": scorer.labels,
                      "words": words, "train_lines": args.train_lines, "train_s": train_s, "load_s": load_s,
                      "file_mib": path.stat().st_size / 2**20},
            "memory": {"peak_rss_mib": peak_rss_mib(), "model_rss_mib": model_rss, "before_model_mib": before}}


if __name__ == "__main__":
    sys.exit(main())
