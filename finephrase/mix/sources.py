"""The inputs of a mix: synthetic run folders (only the chunks their ledgers commit) and source datasets, each as
labelled parts whose records are read with the rephrase reader."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pyarrow.parquet as pq

from finephrase.errors import UsageError
from finephrase.store.datafiles import parquet_files
from finephrase.store.layout import NOT_PROMPT_DIRS

NOT_PROMPTS = NOT_PROMPT_DIRS


@dataclass(eq=False)
class Part:
    """One labelled group of files of an input: a prompt folder of a synthetic run, or a source input."""

    label: str  # the `source` column: synthetic:<name>/<prompt> or source:<name>
    files: list[str]
    text_column: str
    id_column: str
    skipped_files: int = 0  # synthetic: files of chunks no ledger line commits
    n_files: int = 0
    # filled from the counts (totals only: the per-row counts stay on disk, in the spill files)
    rows: int = 0  # records read
    usable: int = 0  # records with text
    tokens: int = 0
    chars: int = 0
    bad: Counter = field(default_factory=Counter)

    def reader(self):
        from finephrase.pipeline.readers.resumable import ResumableReader

        return ResumableReader(self.files, text_column=self.text_column, id_column=self.id_column)


@dataclass(eq=False)
class Unit:
    """One file of a part: the unit of counting and of scattering (tasks of an array take units[rank::tasks])."""

    index: int  # in the list of all units
    input: int  # index of its input
    part: Part
    file: object  # the reader's InputFile
    reader: object

    @property
    def tag(self) -> str:
        return self.part.label + "\0" + self.file.relpath

    def documents(self):
        """The file's documents, ids as `finephrase rephrase` gives them (positional FILE:N from 1)."""
        r, f = self.reader, self.file
        line = 0
        for rec, pos, reject, _ in r.iter_records(f, 0, [r.text_column, r.id_column]):
            if f.kind == "parquet":
                index = pos
            else:
                line += 1
                index = line
            yield r._document(rec, f.relpath, index, reject)


def list_units(inputs: list[MixInput]) -> list[Unit]:
    """Every file of every part, in a fixed order (inputs, parts, the reader's file order)."""
    units: list[Unit] = []
    for i, inp in enumerate(inputs):
        for part in inp.parts:
            reader = part.reader()
            for f in reader.files:
                units.append(Unit(len(units), i, part, f, reader))
    return units


@dataclass(eq=False)
class MixInput:
    kind: str  # "synthetic" | "source"
    name: str
    path: str
    weight: float | None = None
    parts: list[Part] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def tag(self) -> str:
        return self.name + "\0" + self.kind

    @property
    def available_tokens(self) -> int:
        return sum(p.tokens for p in self.parts)

    @property
    def available_rows(self) -> int:
        return sum(p.usable for p in self.parts)

    @property
    def available_chars(self) -> int:
        return sum(p.chars for p in self.parts)


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
    from finephrase.store.ledger import all_ledgers

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
