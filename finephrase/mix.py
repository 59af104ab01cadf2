"""`finephrase mix`: a training mix of synthetic rows and source documents at given token shares.

    finephrase mix --synthetic output/fwe --source data/fwe.parquet --output output/mix-50   # 50/50
    finephrase mix --synthetic output/fwe/faq --synthetic output/fwe2 --source fwe=hf://datasets/... \\
        --synthetic-share 0.7 --seed 1 --output output/mix-70

How (docs/mixing.md):

1. every usable row of every input is tokenized once with the named tokenizer (rows whose text is missing,
   null, not a string or blank are skipped and counted);
2. each input gets a fraction of the total: the synthetic share split over the synthetic inputs (by their token
   counts, or by --synthetic-weights), the rest over the source inputs likewise;
3. the total T is the largest for which no input needs more tokens than it has (one input is used completely,
   the others are sampled), capped by --max-tokens; with --allow-repeats, rows may be repeated instead;
4. each input's rows are shuffled with (seed, input name) and taken in that order while they fit its budget;
   near the end, rows that would overshoot are passed over, and one overshooting row is taken only if it brings
   the total closer: each budget is met to within 0.1% (or one row);
5. the selected rows are shuffled together with the seed and written to OUT/train/NNNNN.parquet (zstd) with
   columns text, source, id, tokens; OUT/mix.json records the request, the inputs and the achieved shares.

Memory: per input row, its token count and length (8 bytes) are kept; texts are streamed a second time into
per-shard bucket files under OUT/.mix-tmp/, then each shard is ordered and written. The mix is complete when
OUT/mix.json exists: OUT/train/ is swapped in just before mix.json is written, so an interrupted mix never
leaves a complete-looking result; a rerun starts over.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import time
import zlib
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from finephrase.argtypes import positive_int
from finephrase.datafiles import parquet_files
from finephrase.errors import UsageError
from finephrase.layout import NOT_PROMPT_DIRS, TRAIN, durable_write, fsync_dir

DEFAULT_TOKENIZER = "smollm2-135m"
TOLERANCE = 0.01  # achieved shares must be within 1 percentage point of the request
FILL_TOLERANCE = 1e-3  # each input's budget is met to within 0.1% (or one row)
FILL_SCAN = 100_000  # rows looked at past the first one that overshoots, to fill the rest of a budget
DEFAULT_SHARD_ROWS = 100_000
MIX_FILE = "mix.json"
TRAIN_DIR = TRAIN
TMP_DIR = ".mix-tmp"
NOT_PROMPTS = NOT_PROMPT_DIRS
_UNION = 0x6D6978  # seed tag of the final shuffle

MIX_SCHEMA = pa.schema([
    pa.field("text", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("id", pa.string(), nullable=False),
    pa.field("tokens", pa.int64(), nullable=False),
])


def _say(msg: str):
    print(msg, file=sys.stderr, flush=True)


# -- the tokenizer --------------------------------------------------------------------------------------------


class TokenCounter:
    """Counts tokens of texts (no BOS/EOS, special tokens not parsed) with a named tokenizer."""

    def __init__(self, name: str, kind: str, location: str, count_batch: Callable[[list[str]], list[int]]):
        self.name, self.kind, self.location = name, kind, location
        self.count_batch = count_batch

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.kind, "location": self.location}


def _gguf_counter(name: str, gguf: str, workers: int) -> TokenCounter:
    """A GGUF's tokenizer (read from the file, no llama.cpp). With workers > 1 a batch is split over the cores
    by tokenizers' own thread pool (the GIL released; RAYON_NUM_THREADS sets its size, else one per CPU); with
    workers == 1 the texts are counted one after the other in the calling thread."""
    from finephrase.tokenizer import GGUFTokenizer

    tok = GGUFTokenizer(gguf)
    try:
        tok._load()
    except Exception as e:  # noqa: BLE001 - a missing, broken or unsupported GGUF: one line
        why = str(e).splitlines()[0] if str(e) else ""
        raise UsageError(f"tokenizer {name}: cannot load {gguf}: {type(e).__name__}: {why}") from None

    def one_by_one(texts: list[str]) -> list[int]:
        return [tok.count_sync(t) for t in texts]

    return TokenCounter(name, "gguf", gguf, tok.count_batch if workers > 1 else one_by_one)


def _hf_counter(name: str, spec: str, from_file: bool) -> TokenCounter:
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise UsageError(f"tokenizer {name} needs the `tokenizers` package (pip install tokenizers); the built-in "
                         f"{DEFAULT_TOKENIZER} needs nothing") from None
    try:
        tok = Tokenizer.from_file(spec) if from_file else Tokenizer.from_pretrained(spec)
    except Exception as e:  # noqa: BLE001 - not found, no network, bad file: one line
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UsageError(f"tokenizer {name} cannot be loaded: {why}") from None
    tok.no_truncation()
    tok.no_padding()

    def count(texts: list[str]) -> list[int]:
        return [len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False)]

    return TokenCounter(name, "tokenizers", spec, count)


def load_tokenizer(name: str = DEFAULT_TOKENIZER, workers: int = 1) -> TokenCounter:
    """`smollm2-135m` (built in: the packaged SmolLM2 GGUF, no download; the SmolLM2 models share this
    tokenizer), a .gguf file, a tokenizer.json file or a folder holding one, or a Hugging Face tokenizer id."""
    if name.lower() in (DEFAULT_TOKENIZER, "smollm2"):
        from finephrase.serving import packaged_gguf_path

        try:
            gguf = str(packaged_gguf_path())
        except Exception as e:  # noqa: BLE001
            raise UsageError(f"tokenizer {name}: {e}") from None
        return _gguf_counter(DEFAULT_TOKENIZER, gguf, workers)
    path = Path(name).expanduser()
    if name.endswith(".gguf"):
        if not path.is_file():
            raise UsageError(f"tokenizer {name}: GGUF file does not exist")
        return _gguf_counter(name, str(path), workers)
    if path.is_dir():
        if not (path / "tokenizer.json").is_file():
            raise UsageError(f"tokenizer {name}: folder has no tokenizer.json")
        return _hf_counter(name, str(path / "tokenizer.json"), True)
    if path.is_file():
        return _hf_counter(name, str(path), True)
    if name.startswith((".", "/", "~")) or name.endswith(".json"):
        raise UsageError(f"tokenizer {name} does not exist")
    return _hf_counter(name, name, False)


# -- inputs ---------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Part:
    """One labelled group of files of an input: a prompt folder of a synthetic run, or a source input."""

    label: str  # the `source` column: synthetic:<name>/<prompt> or source:<name>
    files: list[str]
    text_column: str
    id_column: str
    skipped_files: int = 0  # synthetic: files of chunks no ledger line commits
    n_files: int = 0
    # filled by counting
    tokens: np.ndarray | None = None  # int64 per record; -1 = not usable
    chars: np.ndarray | None = None  # int64 per record (checked again when the rows are written)
    bad: Counter = field(default_factory=Counter)

    def reader(self):
        from finephrase.pipeline.readers.resumable import ResumableReader

        return ResumableReader(self.files, text_column=self.text_column, id_column=self.id_column)

    def documents(self):
        return self.reader().iter_documents(columns=[self.text_column, self.id_column])


@dataclass(eq=False)
class MixInput:
    kind: str  # "synthetic" | "source"
    name: str
    path: str
    weight: float | None = None
    parts: list[Part] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def tokens(self) -> np.ndarray:
        return np.concatenate([p.tokens for p in self.parts])

    @property
    def available_tokens(self) -> int:
        return int(sum(int(p.tokens[p.tokens >= 0].sum()) for p in self.parts))


_NAME = re.compile(r"^([A-Za-z0-9_.+-]+)=(.+)$")


def split_name(spec: str) -> tuple[str | None, str]:
    """`NAME=PATH` -> (NAME, PATH); a plain path -> (None, PATH)."""
    m = _NAME.match(spec)
    if m and "://" not in m.group(1):
        return m.group(1), m.group(2)
    return None, spec


def _default_source_name(path: str) -> str:
    s = path.rstrip("/")
    cut = min([s.find(c) for c in "*?[" if c in s] or [len(s)])
    if cut < len(s):  # a glob: the folder holding its first wildcard
        s = s[:cut].rsplit("/", 1)[0] if "/" in s[:cut] else s[:cut]
    base = s.rstrip("/").rsplit("/", 1)[-1] or "source"
    for ext in (".jsonl.gz", ".json.gz", ".parquet", ".jsonl", ".ndjson"):
        if base.endswith(ext):
            base = base[: -len(ext)]
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", base) or "source"


def resolve_synthetic(spec: str, weight: float | None = None, allow_unfinished: bool = False) -> MixInput:
    """A finephrase run folder (or a dedup output of the same layout): every DIR/<prompt>/*.parquet; or one prompt
    folder DIR/<prompt>. Only chunks committed by the run's ledgers are read when it has them."""
    name, path = split_name(spec)
    root = Path(path)
    if "://" in path:
        raise UsageError(f"synthetic input {path}: only local folders (pass Hub datasets as --source)")
    if not root.exists():
        raise UsageError(f"synthetic input {path} does not exist")
    if not root.is_dir():
        raise UsageError(f"synthetic input {path} is not a folder (expected a finephrase run: DIR/<prompt>/*.parquet)")
    root = root.resolve()
    if parquet_files(root):  # a prompt folder
        run, prompts = root.parent, {root.name: root}
    else:
        run = root
        prompts = {d.name: d for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")
                   and d.name not in NOT_PROMPTS and parquet_files(d)}
    if not prompts:
        raise UsageError(f"synthetic input {path} holds no rows (expected {path}/<prompt>/*.parquet)")
    name = name or run.name
    inp = MixInput("synthetic", name, path, weight)
    committed = _committed_files(run)
    manifest = run / "manifest.json"
    if manifest.is_file():
        try:
            status = orjson.loads(manifest.read_bytes()).get("status")
        except (OSError, orjson.JSONDecodeError, AttributeError):
            status = None
        if status not in (None, "finished"):
            if not allow_unfinished:
                raise UsageError(f"synthetic input {path}: run {run} is not finished (status: {status}): finish it "
                                 f"(rerun its command), or pass --allow-unfinished to mix its committed rows")
            inp.notes.append(f"run {run} is not finished (status: {status}): its committed rows are mixed")
    for prompt, folder in prompts.items():
        files = parquet_files(folder)
        try:
            names = pq.read_schema(files[0]).names
        except Exception as e:  # noqa: BLE001 - not parquet
            raise UsageError(f"synthetic input {path}: {files[0]} cannot be read as parquet: {e}") from None
        if "text" not in names or "prompt" not in names:
            raise UsageError(f"synthetic input {path}: {files[0]} is not finephrase output (no 'text' and 'prompt' "
                             f"columns): pass other datasets as --source")
        kept = [f for f in files if committed is None or f"{prompt}/{f.name}" in committed]
        part = Part(f"synthetic:{name}/{prompt}", [str(f) for f in kept], "text", "id",
                    skipped_files=len(files) - len(kept), n_files=len(kept))
        if part.skipped_files:
            inp.notes.append(f"{folder}: {part.skipped_files} uncommitted chunk files left out")
        if kept:
            inp.parts.append(part)
    if not inp.parts:
        raise UsageError(f"synthetic input {path} holds no committed rows yet")
    return inp


def _committed_files(run: Path) -> set[str] | None:
    """Files the run's ledgers commit (`faq/00000_000000.parquet`), or None if it has no ledgers (take all)."""
    from finephrase.ledger import all_ledgers

    try:
        ledgers = all_ledgers(run)
    except Exception:  # noqa: BLE001 - an unreadable ledger: fall back to every file
        return None
    if not ledgers:
        return None
    return {f for state in ledgers.values() for e in state.entries for f in e.get("files", [])}


def resolve_source(spec: str, text_column: str = "text", id_column: str = "id",
                   weight: float | None = None) -> MixInput:
    """parquet / jsonl / jsonl.gz files, folders, globs or hf:// paths (the rephrase reader's inputs)."""
    from finephrase.pipeline.readers.resumable import resolve_inputs

    name, path = split_name(spec)
    files = resolve_inputs([path])  # one-line errors for a missing path or no readable files
    name = name or _default_source_name(path)
    first = next((f for f in files if f.kind == "parquet"), None)
    if first is not None:  # a missing text column: said now, not after counting (jsonl: when counted)
        from fsspec.core import url_to_fs

        fs, fpath = url_to_fs(first.url)
        try:
            with fs.open(fpath, "rb") as fh:
                names = pq.ParquetFile(fh).schema_arrow.names
        except Exception as e:  # noqa: BLE001 - not parquet, unreadable: one line
            raise UsageError(f"source input {first.relpath} cannot be read as parquet: {e}") from None
        if text_column not in names:
            raise UsageError(f"source input {first.relpath} has no column '{text_column}' (columns: "
                             f"{', '.join(names)}): pass --text-column")
    inp = MixInput("source", name, path, weight)
    # the reader gets the path as given, so positional ids (FILE:ROW) are those `finephrase rephrase` gives
    inp.parts.append(Part(f"source:{name}", [path], text_column, id_column, n_files=len(files)))
    return inp


# -- counting -------------------------------------------------------------------------------------------------

COUNT_BATCH = 1024


def count_part(part: Part, counter: TokenCounter):
    tokens = array("q")  # 8 bytes a row, not a Python int each
    chars = array("q")
    pending: list[tuple[int, str]] = []

    def flush():
        for (i, _), n in zip(pending, counter.count_batch([t for _, t in pending])):
            tokens[i] = n
        pending.clear()

    for doc in part.documents():
        reason = doc.metadata.get("_fp_reject")
        tokens.append(-1)
        chars.append(len(doc.text))
        if reason:
            part.bad[reason] += 1
            continue
        pending.append((len(tokens) - 1, doc.text))
        if len(pending) >= COUNT_BATCH:
            flush()
    flush()
    part.tokens = np.frombuffer(tokens, dtype=np.int64) if len(tokens) else np.zeros(0, dtype=np.int64)
    part.chars = np.frombuffer(chars, dtype=np.int64) if len(chars) else np.zeros(0, dtype=np.int64)
    if len(tokens) and part.bad.get("missing_text", 0) == len(tokens):
        raise UsageError(f"{part.label}: no column '{part.text_column}' in its records"
                         + (" (pass --text-column)" if part.label.startswith("source:") else ""))


# -- budgets and selection ------------------------------------------------------------------------------------


def _rng(seed: int, *tags: int) -> np.random.Generator:
    return np.random.default_rng([seed, *tags])


def _tag(name: str) -> int:
    return zlib.crc32(name.encode())


def fractions(inputs: list[MixInput], share: float) -> list[float]:
    """Each input's requested fraction of the total: its side's share, split by weight (default: its tokens)."""
    out = [0.0] * len(inputs)
    for kind, side in (("synthetic", share), ("source", 1.0 - share)):
        group = [k for k, i in enumerate(inputs) if i.kind == kind]
        weights = {k: inputs[k].weight if inputs[k].weight is not None else float(inputs[k].available_tokens)
                   for k in group}
        total = sum(weights.values())
        for k in group:
            out[k] = side * weights[k] / total
    return out


def plan_total(inputs: list[MixInput], fracs: list[float], max_tokens: int | None,
               allow_repeats: bool) -> tuple[float, int | None]:
    """The total token count T of the mix and the index of the input that limits it (None: --max-tokens)."""
    caps = [i.available_tokens / f for i, f in zip(inputs, fracs)]
    if allow_repeats:
        if max_tokens:
            return float(max_tokens), None
        syn = [(c, k) for k, (c, i) in enumerate(zip(caps, inputs)) if i.kind == "synthetic"]
        c, k = min(syn)
        return c, k
    c, k = min((c, k) for k, c in enumerate(caps))
    if max_tokens and max_tokens < c:
        return float(max_tokens), None
    return c, k


def _fill(order: np.ndarray, toks: np.ndarray, budget: float) -> list[np.ndarray]:
    """Rows of `order` (their tokens: `toks`) in order while they fit `budget`; then rows further on that still
    fit, until within FILL_TOLERANCE; then the smallest passed-over row if overshooting with it is closer."""
    if budget <= 0 or not len(order):
        return []
    cum = np.cumsum(toks)
    n = int(np.searchsorted(cum, budget, side="right"))
    got = float(cum[n - 1]) if n else 0.0
    taken = [order[:n]]
    tol = max(1.0, budget * FILL_TOLERANCE)
    gap = budget - got
    if gap <= tol or n == len(order):
        return taken
    extra: list[int] = []
    smallest = None
    for j in range(n, min(len(order), n + FILL_SCAN)):
        t = int(toks[j])
        if t <= gap:
            extra.append(j)
            gap -= t
            if gap <= tol:
                break
        elif smallest is None or t < toks[smallest]:
            smallest = j
    if gap > tol and smallest is not None and toks[smallest] - gap < gap:
        extra.append(smallest)
    if extra:
        taken.append(order[np.array(extra, dtype=np.int64)])
    return taken


def select(tokens: np.ndarray, budget: float, seed: int, name: str, allow_repeats: bool = False) -> np.ndarray:
    """Indices of the rows an input contributes (shuffled with (seed, name); repeated only with allow_repeats)."""
    usable = np.flatnonzero(tokens >= 0)
    avail = float(tokens[usable].sum())
    tag = _tag(name)
    first = _rng(seed, tag, 0).permutation(usable)
    if budget >= avail * (1 - 1e-12):
        if not allow_repeats or budget <= avail * (1 + FILL_TOLERANCE):
            return first
        passes = int(budget // avail)
        chunks = [first] + [_rng(seed, tag, e).permutation(usable) for e in range(1, passes)]
        last = _rng(seed, tag, passes).permutation(usable)
        chunks += _fill(last, tokens[last], budget - passes * avail)
        return np.concatenate(chunks)
    return np.concatenate(_fill(first, tokens[first], budget) or [np.zeros(0, dtype=np.int64)])


# -- writing --------------------------------------------------------------------------------------------------


class _Buckets:
    """Rows bound for each output shard, appended to OUT/.mix-tmp/buckets/SSSSS.jsonl in batches."""

    def __init__(self, folder: Path, flush_bytes: int = 64 << 20):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.buf: dict[int, list[bytes]] = {}
        self.size = 0
        self.flush_bytes = flush_bytes

    def add(self, shard: int, line: bytes):
        self.buf.setdefault(shard, []).append(line)
        self.size += len(line)
        if self.size >= self.flush_bytes:
            self.flush()

    def flush(self):
        for shard, lines in self.buf.items():
            with open(self.folder / f"{shard:05d}.jsonl", "ab") as f:
                f.write(b"".join(lines))
        self.buf.clear()
        self.size = 0

    def read(self, shard: int) -> list:
        path = self.folder / f"{shard:05d}.jsonl"
        if not path.exists():
            return []
        with open(path, "rb") as f:
            rows = [orjson.loads(line) for line in f]
        path.unlink()
        return rows




# -- the whole mix --------------------------------------------------------------------------------------------


@dataclass
class MixConfig:
    synthetic: list[str]  # run folders or prompt folders; NAME=PATH names one
    sources: list[str]  # files, folders, globs, hf:// paths; NAME=PATH names one
    output: str
    synthetic_share: float = 0.5
    synthetic_weights: list[float] | None = None  # relative, one per synthetic input (default: their tokens)
    source_weights: list[float] | None = None
    tokenizer: str = DEFAULT_TOKENIZER
    seed: int = 0
    max_tokens: int | None = None
    allow_repeats: bool = False
    allow_unfinished: bool = False  # mix the committed rows of a run that has not finished
    shard_rows: int = DEFAULT_SHARD_ROWS
    text_column: str = "text"  # of the source inputs (synthetic rows: `text`)
    id_column: str = "id"
    workers: int = 0  # tokenizer threads (0: min(8, CPUs))

    def check(self):
        if not self.synthetic:
            raise UsageError("give at least one --synthetic input (a finephrase run folder)")
        if not self.sources:
            raise UsageError("give at least one --source input (parquet/jsonl files, a folder, a glob, hf://)")
        s = self.synthetic_share
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not 0 < s < 1:
            raise UsageError(f"synthetic share must be a number strictly between 0 and 1, got {s}")
        for label, weights, n in (("synthetic", self.synthetic_weights, len(self.synthetic)),
                                  ("source", self.source_weights, len(self.sources))):
            if weights is None:
                continue
            if len(weights) != n:
                raise UsageError(f"--{label}-weights has {len(weights)} values for {n} {label} inputs")
            if any(not (isinstance(w, (int, float)) and w > 0 and w != float("inf")) for w in weights):
                raise UsageError(f"--{label}-weights must be positive numbers, got {weights}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise UsageError(f"--max-tokens must be at least 1, got {self.max_tokens}")
        if self.shard_rows < 1:
            raise UsageError(f"--shard-rows must be at least 1, got {self.shard_rows}")
        if self.seed < 0:
            raise UsageError(f"--seed must be >= 0, got {self.seed}")


def _check_output(out: Path):
    if out.exists() and not out.is_dir():
        raise UsageError(f"output {out} exists and is not a folder")
    if (out / "manifest.json").exists():
        raise UsageError(f"output {out} is a rephrasing run: write the mix to another folder")


def _prepare_output(out: Path):
    _check_output(out)
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / TMP_DIR, ignore_errors=True)  # left by an interrupted mix


def build_mix(cfg: MixConfig, quiet: bool = False, command: list[str] | None = None) -> dict:
    """Build the mix described by `cfg` into cfg.output; returns what is written to OUT/mix.json."""
    say = (lambda m: None) if quiet else _say
    started = time.time()
    cfg.check()
    sw = cfg.synthetic_weights or [None] * len(cfg.synthetic)
    rw = cfg.source_weights or [None] * len(cfg.sources)
    inputs = [resolve_synthetic(s, w, cfg.allow_unfinished) for s, w in zip(cfg.synthetic, sw)]
    inputs += [resolve_source(s, cfg.text_column, cfg.id_column, w) for s, w in zip(cfg.sources, rw)]
    seen: dict[str, str] = {}
    for inp in inputs:
        for p in inp.parts:
            if p.label in seen:
                raise UsageError(f"two inputs are both named {p.label} ({seen[p.label]}, {inp.path}): "
                                 f"name them with NAME=PATH")
            seen[p.label] = inp.path
    out = Path(cfg.output)
    for inp in inputs:
        if inp.kind == "synthetic" and Path(split_name(inp.path)[1]).resolve() == out.resolve():
            raise UsageError(f"output {out} is also a synthetic input")
    _check_output(out)
    workers = cfg.workers or min(8, os.cpu_count() or 1)
    counter = load_tokenizer(cfg.tokenizer, workers)
    _prepare_output(out)
    for inp in inputs:
        for note in inp.notes:
            say(f"note: {note}")

    t0 = time.time()
    counted_tokens = counted_chars = 0
    for inp in inputs:
        for part in inp.parts:
            t1 = time.time()
            count_part(part, counter)
            usable = part.tokens >= 0
            n_tok, n_chr = int(part.tokens[usable].sum()), int(part.chars[usable].sum())
            counted_tokens += n_tok
            counted_chars += n_chr
            dt = max(time.time() - t1, 1e-9)
            why = ", ".join(f"{k}: {v}" for k, v in sorted(part.bad.items()))
            bad = f", {sum(part.bad.values())} skipped ({why})" if part.bad else ""
            say(f"counted {part.label}: {int(usable.sum()):,} rows, {n_tok:,} tokens{bad} "
                f"({dt:.1f} s, {n_tok / dt:,.0f} tokens/s)")
        if inp.available_tokens == 0:
            raise UsageError(f"{inp.kind} input {inp.path} has no rows with text")
    count_s = time.time() - t0

    fracs = fractions(inputs, cfg.synthetic_share)
    total, limiting = plan_total(inputs, fracs, cfg.max_tokens, cfg.allow_repeats)
    selections = [select(inp.tokens, f * total, cfg.seed, inp.name + "\0" + inp.kind, cfg.allow_repeats)
                  for inp, f in zip(inputs, fracs)]

    if limiting is not None and not cfg.allow_repeats and inputs[limiting].kind == "source":
        syn_avail = sum(i.available_tokens for i in inputs if i.kind == "synthetic")
        syn_used = sum(int(i.tokens[s].sum()) for i, s in zip(inputs, selections) if i.kind == "synthetic")
        if syn_used < syn_avail:
            say(f"note: source input {inputs[limiting].path} has only {inputs[limiting].available_tokens:,} tokens, "
                f"so {syn_used:,} of the {syn_avail:,} synthetic tokens ({syn_used / syn_avail:.0%}) are used to keep "
                f"the {cfg.synthetic_share:.0%} share without repeating rows (--allow-repeats repeats source rows "
                f"instead)")

    # the final order: entry j (inputs in order, then their selections) goes to position pos[j]
    sizes = [len(s) for s in selections]
    n_rows = sum(sizes)
    if n_rows == 0:
        raise UsageError("the mix would be empty (--max-tokens too small?)")
    pos = _rng(cfg.seed, _UNION).permutation(n_rows)
    n_shards = -(-n_rows // cfg.shard_rows)
    tmp = out / TMP_DIR
    buckets = _Buckets(tmp / "buckets")
    labels = [p.label for inp in inputs for p in inp.parts]
    t0 = time.time()
    offset = 0
    for inp, sel in zip(inputs, selections):
        p = pos[offset:offset + len(sel)]
        offset += len(sel)
        order = np.argsort(sel, kind="stable")
        ks, ps = sel[order], p[order]
        at = 0  # next entry in ks
        base = 0  # index of the part's first record within the input
        for part in inp.parts:
            if at >= len(ks):
                break
            end = base + len(part.tokens)
            if ks[at] >= end:
                base = end
                continue
            li = labels.index(part.label)
            for k, doc in enumerate(part.documents(), start=base):
                if k >= end:
                    raise UsageError(f"{part.label} changed while mixing (more records than when counted): rerun")
                if ks[at] != k:
                    continue
                if doc.metadata.get("_fp_reject") or len(doc.text) != part.chars[k - base]:
                    raise UsageError(f"{part.label} changed while mixing (record {k - base + 1} differs): rerun")
                while at < len(ks) and ks[at] == k:
                    where = int(ps[at])
                    buckets.add(where // cfg.shard_rows,
                                orjson.dumps([where, li, doc.id, int(part.tokens[k - base]), doc.text]) + b"\n")
                    at += 1
                if at >= len(ks) or ks[at] >= end:
                    break
            base = end
        if at != len(ks):
            raise UsageError(f"{inp.kind} input {inp.path} changed while mixing (fewer records than when counted): "
                             f"rerun")
    buckets.flush()

    train_tmp = tmp / TRAIN_DIR
    train_tmp.mkdir(parents=True, exist_ok=True)
    files = []
    for s in range(n_shards):
        rows = sorted(buckets.read(s), key=lambda r: r[0])
        expect = min(cfg.shard_rows, n_rows - s * cfg.shard_rows)
        if len(rows) != expect or any(r[0] != s * cfg.shard_rows + i for i, r in enumerate(rows)):
            raise UsageError(f"internal error: shard {s} has {len(rows)} rows, expected {expect}")
        table = pa.table({"text": [r[4] for r in rows], "source": [labels[r[1]] for r in rows],
                          "id": [r[2] for r in rows], "tokens": [r[3] for r in rows]}, schema=MIX_SCHEMA)
        name = f"{s:05d}.parquet"
        pq.write_table(table, train_tmp / name, compression="zstd", row_group_size=min(cfg.shard_rows, 10_000))
        files.append(f"{TRAIN_DIR}/{name}")
    write_s = time.time() - t0

    report = _report(cfg, inputs, fracs, selections, labels, counter, total, limiting, files, command)
    report["timing"] = {"count_s": round(count_s, 3), "write_s": round(write_s, 3),
                        "total_s": round(time.time() - started, 3),
                        "tokens_per_s": round(counted_tokens / max(count_s, 1e-9)),
                        "mb_per_s": round(counted_chars / 1e6 / max(count_s, 1e-9), 3), "workers": workers}

    # swap in: mix.json goes last, so OUT is complete exactly when mix.json exists

    (out / MIX_FILE).unlink(missing_ok=True)
    old = tmp / "old-train"
    if (out / TRAIN_DIR).exists():
        os.replace(out / TRAIN_DIR, old)
    os.replace(train_tmp, out / TRAIN_DIR)
    fsync_dir(out)
    durable_write(out / MIX_FILE, orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    shutil.rmtree(tmp, ignore_errors=True)
    if not quiet:
        print(format_report(report))
    if not report["within_tolerance"]:
        say(f"warning: an achieved share is more than {TOLERANCE:.0%} off the request (rows are large for these "
            f"budgets): see the table")
    return report


def _report(cfg: MixConfig, inputs, fracs, selections, labels, counter, total, limiting, files,
            command: list[str] | None) -> dict:
    from finephrase import __version__

    parts: dict[str, dict] = {}
    per_input = []
    for inp, f, sel in zip(inputs, fracs, selections):
        entry = {"kind": inp.kind, "name": inp.name, "path": inp.path, "weight": inp.weight,
                 "requested_share": f, "available": {"rows": 0, "tokens": 0}, "skipped_rows": 0,
                 "selected": {"rows": int(len(sel)), "tokens": 0}, "parts": {}}
        base = 0
        for part in inp.parts:
            n = len(part.tokens)
            mine = sel[(sel >= base) & (sel < base + n)] - base
            usable = part.tokens >= 0
            d = {"files": part.n_files, "available": {"rows": int(usable.sum()),
                                                          "tokens": int(part.tokens[usable].sum())},
                 "skipped_rows": dict(sorted(part.bad.items())),
                 "selected": {"rows": int(len(mine)), "tokens": int(part.tokens[mine].sum())}}
            if part.skipped_files:
                d["uncommitted_files_left_out"] = part.skipped_files
            entry["parts"][part.label] = d
            parts[part.label] = dict(d["selected"])
            for key in ("rows", "tokens"):
                entry["available"][key] += d["available"][key]
            entry["skipped_rows"] += sum(part.bad.values())
            entry["selected"]["tokens"] += d["selected"]["tokens"]
            base += n
        per_input.append(entry)
    tot_tokens = sum(e["selected"]["tokens"] for e in per_input)
    tot_rows = sum(e["selected"]["rows"] for e in per_input)
    shares = {}
    ok = True
    for kind, req in (("synthetic", cfg.synthetic_share), ("source", 1 - cfg.synthetic_share)):
        got = sum(e["selected"]["tokens"] for e in per_input if e["kind"] == kind) / tot_tokens
        shares[kind] = {"requested": req, "achieved": got}
        ok &= abs(got - req) <= TOLERANCE
    for e, sel in zip(per_input, selections):
        e["achieved_share"] = e["selected"]["tokens"] / tot_tokens
        ok &= abs(e["achieved_share"] - e["requested_share"]) <= TOLERANCE
        e["repeated_rows"] = int(len(sel) - len(np.unique(sel)))
    for label, d in parts.items():
        d["share"] = d["tokens"] / tot_tokens
    return {
        "finephrase_version": __version__,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": command,
        "request": {"synthetic_share": cfg.synthetic_share, "source_share": 1 - cfg.synthetic_share,
                    "synthetic": list(cfg.synthetic), "sources": list(cfg.sources),
                    "synthetic_weights": cfg.synthetic_weights, "source_weights": cfg.source_weights,
                    "tokenizer": cfg.tokenizer, "seed": cfg.seed, "max_tokens": cfg.max_tokens,
                    "allow_repeats": cfg.allow_repeats, "shard_rows": cfg.shard_rows,
                    "text_column": cfg.text_column, "id_column": cfg.id_column},
        "tokenizer": counter.describe(),
        "seed": cfg.seed,
        "planned_tokens": round(total),
        "limited_by": "max_tokens" if limiting is None else f"{inputs[limiting].kind}:{inputs[limiting].name}",
        "inputs": per_input,
        "parts": parts,
        "totals": {"rows": tot_rows, "tokens": tot_tokens},
        "shares": shares,
        "tolerance": TOLERANCE,
        "within_tolerance": bool(ok),
        "files": files,
    }


def format_report(report: dict) -> str:
    tot = report["totals"]["tokens"]
    rows = [("", "rows", "tokens", "requested", "achieved")]
    for e in report["inputs"]:
        rows.append((f"{e['kind']} {e['name']}", f"{e['selected']['rows']:,}", f"{e['selected']['tokens']:,}",
                     f"{e['requested_share']:.2%}", f"{e['achieved_share']:.2%}"))
        if len(e["parts"]) > 1:
            for label, d in e["parts"].items():
                rows.append((f"  {label}", f"{d['selected']['rows']:,}", f"{d['selected']['tokens']:,}", "",
                             f"{d['selected']['tokens'] / tot:.2%}"))
    for kind, s in report["shares"].items():
        n = sum(e["selected"]["tokens"] for e in report["inputs"] if e["kind"] == kind)
        r = sum(e["selected"]["rows"] for e in report["inputs"] if e["kind"] == kind)
        rows.append((f"{kind} (total)", f"{r:,}", f"{n:,}", f"{s['requested']:.2%}", f"{s['achieved']:.2%}"))
    rows.append(("mix", f"{report['totals']['rows']:,}", f"{tot:,}", "", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
             for r in rows]
    tok = report["tokenizer"]["name"]
    lines.append(f"{len(report['files'])} files in train/, tokens of {tok}, seed {report['seed']}; "
                 f"shares {'within' if report['within_tolerance'] else 'NOT within'} {report['tolerance']:.0%} "
                 f"of the request")
    return "\n".join(lines)


# -- the command ----------------------------------------------------------------------------------------------


def _share(v: str) -> float:
    try:
        x = float(v.split("=", 1)[1] if v.startswith("synthetic=") else v)
    except ValueError:
        raise UsageError(f"synthetic share must be a number strictly between 0 and 1, got {v}") from None
    if not 0 < x < 1:
        raise UsageError(f"synthetic share must be a number strictly between 0 and 1, got {v}")
    return x


def _weights(v: str | None, flag: str) -> list[float] | None:
    if v is None:
        return None
    try:
        return [float(x) for x in v.split(",")]
    except ValueError:
        raise UsageError(f"{flag} takes comma-separated numbers, got {v}") from None


def add_parser(sub):
    p = sub.add_parser(
        "mix", help="build a training mix of synthetic outputs and source data at given token shares",
        description="Mix one or more synthetic outputs (finephrase run folders) with one or more source\n"
        "datasets at a token share (default 50/50), counted with a named tokenizer, shuffled with a seed, into\n"
        "OUT/train/NNNNN.parquet (columns text, source, id, tokens) and OUT/mix.json. No row is repeated\n"
        "unless --allow-repeats is given. See docs/mixing.md.",
        epilog="example:\n  finephrase mix --synthetic output/fwe --source data/fwe.parquet --synthetic-share 0.7 "
        "--output output/mix-70",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--synthetic", action="append", default=[], metavar="[NAME=]DIR", required=True,
                   help="a finephrase run folder (every DIR/<prompt>/) or one prompt folder DIR/<prompt> "
                   "(repeatable); rows are labelled synthetic:NAME/<prompt> (NAME: the run folder's name)")
    p.add_argument("--source", action="append", default=[], metavar="[NAME=]PATH", required=True,
                   help="parquet / jsonl / jsonl.gz file, folder, glob or hf:// path (repeatable); rows are "
                   "labelled source:NAME (NAME: the file or folder name)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output folder (a previous mix in it "
                   "is replaced)")
    p.add_argument("--synthetic-share", "--share", default="0.5", metavar="P",
                   help="share of synthetic tokens, strictly between 0 and 1 (default 0.5; also synthetic=P)")
    p.add_argument("--synthetic-weights", metavar="W,W,...",
                   help="relative weights of the --synthetic inputs, in order (default: their token counts)")
    p.add_argument("--source-weights", metavar="W,W,...",
                   help="relative weights of the --source inputs, in order (default: their token counts)")
    p.add_argument("--tokenizer", default=DEFAULT_TOKENIZER,
                   help="smollm2-135m (built in, default), a .gguf file, a tokenizer.json (or a folder with one), "
                   "or a Hugging Face tokenizer id (needs the `tokenizers` package)")
    p.add_argument("--seed", type=int, default=0, help="seed of the selection and the shuffle (default 0)")
    p.add_argument("--max-tokens", type=positive_int, metavar="N", help="cap on the mix's total tokens")
    p.add_argument("--allow-unfinished", action="store_true",
                   help="mix the committed rows of a synthetic run that has not finished (refused otherwise)")
    p.add_argument("--allow-repeats", action="store_true",
                   help="use every synthetic token and repeat source rows if the source is too small (with "
                   "--max-tokens: repeat any input as needed); default: never repeat a row")
    p.add_argument("--shard-rows", type=positive_int, default=DEFAULT_SHARD_ROWS, metavar="N",
                   help=f"rows per output file (default {DEFAULT_SHARD_ROWS:,})")
    p.add_argument("--text-column", default="text", help="text column of the --source inputs (default: text)")
    p.add_argument("--id-column", default="id",
                   help="id column of the --source inputs (default: id; without it: FILE:ROW)")
    p.add_argument("--workers", type=positive_int, default=0,
                   help="above 1: count tokens on all cores (tokenizers' thread pool), 1: in one thread "
                   "(default: CPUs, at most 8)")
    p.set_defaults(func=main)


def main(args) -> int:
    cfg = MixConfig(
        synthetic=args.synthetic, sources=args.source, output=args.output,
        synthetic_share=_share(args.synthetic_share),
        synthetic_weights=_weights(args.synthetic_weights, "--synthetic-weights"),
        source_weights=_weights(args.source_weights, "--source-weights"),
        tokenizer=args.tokenizer, seed=args.seed, max_tokens=args.max_tokens, allow_repeats=args.allow_repeats,
        allow_unfinished=args.allow_unfinished,
        shard_rows=args.shard_rows, text_column=args.text_column, id_column=args.id_column,
        workers=args.workers,
    )
    build_mix(cfg, command=sys.argv)
    return 0
