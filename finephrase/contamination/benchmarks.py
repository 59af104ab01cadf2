"""Benchmark files as lists of item texts: which columns form an item, for the layouts of well-known benchmarks
and for any other given by its columns, read from local or hf:// parquet, jsonl or json files.

A spec, as `finephrase decontaminate --benchmarks` takes it: `NAME=PATH[#LAYOUT]`, `NAME=PATH#COL1,COL2,...` or
just `PATH` (the name is the file's stem). PATH may be a glob (`data/mmlu/test-*.parquet`) or an hf:// path
(`hf://datasets/openai/gsm8k/main/test-*.parquet`). Without a layout, the first layout of LAYOUTS whose columns
the file has is used. An item's text is every string in its columns, in order (the strings inside a list or a
struct too: choices, answer spans), one per line.
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass
from pathlib import Path

import orjson
import pyarrow as pa

from finephrase.errors import UsageError

# which columns form an item, by the Hugging Face layout of each benchmark. Passages (SQuAD's context, DROP's
# passage) are left out: they are Wikipedia text a web page may quote without carrying the benchmark's questions.
LAYOUTS = {
    "mmlu": ["question", "choices"],  # MMLU, MMLU-Redux: choices a list, answer an index
    "arc": ["question", "choices"],  # ARC, CommonsenseQA / X-CSQA: choices {text, label}
    "openbookqa": ["question_stem", "choices"],
    "hellaswag": ["ctx", "endings"],
    "gsm8k": ["question", "answer"],
    "squad": ["question", "answers"],  # SQuAD v2: answers {text, answer_start}
    "drop": ["question", "answers_spans"],
    "winogrande": ["sentence", "option1", "option2"],
    "piqa": ["goal", "sol1", "sol2"],
}
_DETECT_ORDER = ["hellaswag", "winogrande", "piqa", "openbookqa", "drop", "squad", "mmlu", "gsm8k"]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_FORMATS = (".parquet", ".jsonl", ".json")


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str
    path: str
    layout: str | None = None  # a LAYOUTS name, or None: detected from the file's columns
    columns: tuple[str, ...] = ()  # given instead of a layout

    def describe(self) -> str:
        how = self.layout or ",".join(self.columns) or "detected"
        return f"{self.name}={self.path}#{how}"


@dataclass(frozen=True)
class Benchmark:
    name: str
    source: str  # the spec's path
    layout: str  # the layout name, or "columns"
    columns: tuple[str, ...]
    items: list[str]  # one text per item, in file order (an item's number is its index here)


def parse_spec(spec: str) -> BenchmarkSpec:
    """`NAME=PATH[#LAYOUT|#COLUMNS]` or `PATH` -> BenchmarkSpec; a one-line UsageError for a malformed one."""
    form = "expected NAME=PATH[#LAYOUT] or NAME=PATH#COLUMN,COLUMN (layouts: " + ", ".join(LAYOUTS) + ")"
    name, sep, rest = spec.partition("=")
    if not sep or "/" in name or "#" in name:
        name, rest = _stem(spec.partition("#")[0]), spec
    path, _, how = rest.partition("#")
    if not path or not name or not _NAME.match(name):
        raise UsageError(f"benchmark {spec!r}: {form}")
    if not path.startswith("hf://") and not path.endswith(_FORMATS):
        raise UsageError(f"benchmark {spec!r}: {path} is not a .parquet, .jsonl or .json file (or glob of them)")
    if not how:
        return BenchmarkSpec(name, path)
    if how in LAYOUTS:
        return BenchmarkSpec(name, path, layout=how)
    columns = tuple(c.strip() for c in how.split(",") if c.strip())
    if not columns:
        raise UsageError(f"benchmark {spec!r}: nothing after '#': {form}")
    return BenchmarkSpec(name, path, columns=columns)


def _stem(path: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", Path(path).name.split(".")[0].split("*")[0].strip("-_")) or "benchmark"


def _files(path: str) -> tuple[list[str], object]:
    """The files a spec's path names, sorted, and the fsspec filesystem to open them with (None: local)."""
    if path.startswith("hf://"):
        from huggingface_hub import HfFileSystem

        fs = HfFileSystem()
        try:
            found = sorted(fs.glob(path.removeprefix("hf://"))) if glob.has_magic(path) else [path[5:]]
        except Exception as e:  # noqa: BLE001 - the Hub's errors are many; one line says which
            raise UsageError(f"benchmark files {path} cannot be listed: {type(e).__name__}: {e}") from None
        return found, fs
    found = sorted(glob.glob(path)) if glob.has_magic(path) else ([path] if Path(path).is_file() else [])
    if not found:
        raise UsageError(f"benchmark file {path} does not exist")
    return found, None


def _read(name: str, fs) -> pa.Table:
    import pyarrow.json as pj
    import pyarrow.parquet as pq

    try:
        with (fs.open(name, "rb") if fs else open(name, "rb")) as f:
            if name.endswith(".parquet"):
                return pq.read_table(f)
            if name.endswith(".jsonl"):
                return pj.read_json(f)
            rows = orjson.loads(f.read())
    except (OSError, pa.ArrowInvalid, orjson.JSONDecodeError) as e:
        raise UsageError(f"benchmark file {name} cannot be read: {str(e).splitlines()[0]}") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise UsageError(f"benchmark file {name}: a .json file must hold a list of objects (items)")
    return pa.Table.from_pylist(rows)


def _strings(value) -> list[str]:
    """Every string inside a cell: itself, a list's, a struct's values', in order."""
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _columns(spec: BenchmarkSpec, have: list[str], where: str) -> tuple[str, tuple[str, ...]]:
    if spec.columns:
        layout, columns = "columns", spec.columns
    elif spec.layout:
        layout, columns = spec.layout, tuple(LAYOUTS[spec.layout])
    else:
        found = [name for name in _DETECT_ORDER if set(LAYOUTS[name]) <= set(have)]
        if not found:
            raise UsageError(f"benchmark {spec.name}: {where} has columns {', '.join(have)}, no known layout "
                             f"({', '.join(LAYOUTS)}): give its columns, {spec.name}={spec.path}#COL1,COL2")
        layout, columns = found[0], tuple(LAYOUTS[found[0]])
    missing = [c for c in columns if c not in have]
    if missing:
        raise UsageError(f"benchmark {spec.name}: {where} has no column {', '.join(missing)} (it has "
                         f"{', '.join(have)})")
    return layout, columns


def load_benchmark(spec: BenchmarkSpec) -> Benchmark:
    """The items of a benchmark: one text each, every file of the spec in sorted order."""
    files, fs = _files(spec.path)
    items: list[str] = []
    layout, columns = None, ()
    for name in files:
        table = _read(name, fs)
        layout, columns = _columns(spec, table.column_names, name)
        rows = table.select(list(columns)).to_pylist()
        items.extend("\n".join(s for c in columns for s in _strings(row[c])) for row in rows)
    if not items:
        raise UsageError(f"benchmark {spec.name}: {spec.path} holds no items")
    return Benchmark(spec.name, spec.path, layout, columns, items)
