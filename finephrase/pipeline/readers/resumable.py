"""Read parquet / jsonl / jsonl.gz (local or `hf://`), with positions a resumed task can seek to.

Every document carries, in its metadata, where the input stands *after* it (`meta.POSITION`), how many documents the
task has read (`meta.POSITION`.read) and the fraction of the task's input consumed (`meta.FRACTION`). The commit ledger
stores each committed chunk's range and the position after it; a resumed task reads only the gaps between
committed ranges, seeking to each (parquet: to the row group, jsonl: to the byte offset, jsonl.gz:
decompress-and-skip without parsing) instead of re-reading rows.

Unlike datatrove's readers, bad records are not dropped: they come out with `meta.REJECTED` set to a reason
(malformed_json, invalid_utf8, not_an_object, missing_text, text_null, text_not_string, text_empty) so every
input record is accounted for. Files are sharded over tasks as datatrove does (`files[rank::world_size]`).
"""

from __future__ import annotations

import gzip
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import orjson
import pyarrow.parquet as pq
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from fsspec.core import url_to_fs

from finephrase.errors import UsageError
from finephrase.store import metadata as meta

EXTENSIONS = (".parquet", ".jsonl", ".jsonl.gz", ".json.gz", ".ndjson")
_GLOB_CHARS = "*?["


@dataclass(frozen=True)
class InputFile:
    url: str  # what to open (protocol included)
    relpath: str  # stable name used in positional ids and in the manifest
    size: int

    @property
    def kind(self) -> str:
        if self.url.endswith(".parquet"):
            return "parquet"
        return "jsonl.gz" if self.url.endswith(".gz") else "jsonl"


def _join(protocol: str, path: str) -> str:
    return path if protocol in ("", "file") else f"{protocol}://{path}"


def resolve_inputs(inputs: list[str]) -> list[InputFile]:
    """Expand files, folders and globs into a sorted, de-duplicated list of readable input files."""
    files: dict[str, InputFile] = {}
    for spec in inputs:
        try:
            found, base, fs, protocol = _list_input(spec)
        except UsageError:
            raise
        except Exception as e:  # a remote filesystem that cannot be reached
            detail = " ".join(str(e).split())[:160]
            if spec.startswith("hf://"):
                raise UsageError(f"cannot reach the Hugging Face Hub for {spec} ({type(e).__name__}: {detail}): "
                                 f"check the network or HF_ENDPOINT") from None
            raise UsageError(f"input {spec} cannot be listed ({type(e).__name__}: {detail})") from None
        for p in sorted(found):
            rel = p[len(base):].lstrip("/") if p.startswith(base) else p
            url = _join(protocol, p)
            files.setdefault(url, InputFile(url, rel, int(fs.size(p) or 0)))
    # positional ids are FILE:ROW with FILE the path below its input: two inputs holding the same relative
    # name (d1/train.jsonl, d2/train.jsonl) would share ids, so those are named by their full path instead
    seen = Counter(f.relpath for f in files.values())
    unique = [f if seen[f.relpath] == 1 else InputFile(f.url, f.url, f.size) for f in files.values()]
    return sorted(unique, key=lambda f: (f.relpath, f.url))


def _list_input(spec: str) -> tuple[list[str], str, object, str]:
    """(files, the folder their relative names start from, the filesystem, its protocol) of one input."""
    fs, root = url_to_fs(spec)
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    try:
        if any(c in root for c in _GLOB_CHARS):
            found = [p for p in fs.glob(root) if fs.isfile(p)]
            base = root[: min(root.find(c) for c in _GLOB_CHARS if c in root)].rsplit("/", 1)[0]
        elif fs.isdir(root):
            found = [p for p in fs.find(root) if p.endswith(EXTENSIONS)]
            base = root
        elif fs.isfile(root):
            if not root.endswith(EXTENSIONS):
                raise UsageError(f"input {spec} is not parquet/jsonl/jsonl.gz (by its extension)")
            found, base = [root], root.rsplit("/", 1)[0]
        else:
            raise UsageError(f"input path {spec} does not exist")
    except (FileNotFoundError, PermissionError) as e:
        raise UsageError(f"input path {spec} cannot be read: {e}") from None
    found = [p for p in found if p.endswith(EXTENSIONS)]
    if not found:
        raise UsageError(f"input {spec} holds no parquet/jsonl/jsonl.gz files")
    return found, base, fs, protocol


@dataclass(frozen=True)
class Shard:
    """What one task reads of one input file: all of it, or some of its parquet row groups."""

    file: InputFile
    row_groups: tuple[int, ...] | None = None  # None: the whole file
    rows: int | None = None  # rows in those row groups (None: the whole file, not counted)
    size: int = 0  # bytes, about (for progress)

    @property
    def kind(self) -> str:
        return self.file.kind

    @property
    def relpath(self) -> str:
        return self.file.relpath

    @property
    def url(self) -> str:
        return self.file.url


def _row_group_sizes(f: InputFile) -> list[int]:
    fs, path = url_to_fs(f.url)
    with fs.open(path, "rb") as fh:
        md = pq.ParquetFile(fh).metadata
        return [md.row_group(i).num_rows for i in range(md.num_row_groups)]


# With fewer files than this many per task, parquet files are split by row group so that tasks stay balanced.
FILES_PER_TASK_FOR_FILE_SHARDING = 4


class ResumableReader(PipelineStep):
    name = "📖 Resumable reader"
    type = "📖 - READER"

    def __init__(self, inputs: str | list[str], text_column: str = "text", id_column: str | None = None,
                 limit: int = -1, resume_dir: str | None = None, batch_size: int = 1024):
        super().__init__()
        self.inputs = [inputs] if isinstance(inputs, str) else list(inputs)
        self.text_column = text_column
        # not given: "id" where a record has it, else the position FILE:ROW; given: the input must have the column
        # (`finephrase.run.run` refuses a first input file without it, as it does for the text column)
        self.id_column = "id" if id_column is None else id_column
        self.id_column_given = id_column is not None
        self.limit = limit
        self.resume_dir = resume_dir
        self.batch_size = batch_size
        self._files: list[InputFile] | None = None
        self.seeks: list[dict | None] = []  # the positions the last run() started reading at (None: the start)

    def resuming(self, resume_dir: str) -> "ResumableReader":
        """A new reader like this one that resumes from `resume_dir` (the run's copy; this one is not changed). A
        subclass whose constructor takes other arguments overrides this."""
        return type(self)(self.inputs, self.text_column, self.id_column if self.id_column_given else None,
                          self.limit, resume_dir, self.batch_size)

    @property
    def files(self) -> list[InputFile]:
        if self._files is None:
            self._files = resolve_inputs(self.inputs)
        return self._files

    def shard(self, rank: int, world_size: int) -> list[Shard]:
        """This task's part of the input. Many files: whole files, `files[rank::world_size]` as datatrove does.
        Few files for the task count: parquet row groups are dealt out round-robin (neighbours of one file that
        land on the same task are merged), so a handful of large files still keeps every task busy."""
        files = self.files
        if world_size == 1 or len(files) >= FILES_PER_TASK_FOR_FILE_SHARDING * world_size or \
                not any(f.kind == "parquet" for f in files):
            return [Shard(f, size=f.size) for f in files[rank::world_size]]
        units = []
        for f in files:
            if f.kind == "parquet":
                sizes = _row_group_sizes(f)
                total = max(sum(sizes), 1)
                units += [(f, rg, n, f.size * n / total) for rg, n in enumerate(sizes)]
            else:
                units.append((f, None, None, f.size))
        shards: list[Shard] = []
        for f, rg, n, size in units[rank::world_size]:
            last = shards[-1] if shards else None
            if rg is not None and last and last.file == f and last.row_groups is not None:
                shards[-1] = Shard(f, last.row_groups + (rg,), last.rows + n, last.size + int(size))
            else:
                shards.append(Shard(f, None if rg is None else (rg,), n, int(size)))
        return shards

    # -- one record -> one Document ------------------------------------------------------------------------------

    def _document(self, record, relpath: str, index: int, reject: str | None = None) -> Document:
        metadata = {}
        source_id = None
        text = ""
        if reject is None and not isinstance(record, dict):
            reject = "not_an_object"
        if reject is None:
            raw_id = record.get(self.id_column)
            if raw_id is not None and raw_id != "":
                source_id = str(raw_id)
            if self.text_column not in record:
                reject = "missing_text"
            else:
                value = record[self.text_column]
                if value is None:
                    reject = "text_null"
                elif not isinstance(value, str):
                    reject = "text_not_string"
                elif not value.strip():
                    reject = "text_empty"
                else:
                    text = value
            metadata = {k: v for k, v in record.items() if k not in (self.text_column, self.id_column)}
        if reject:
            metadata[meta.REJECTED] = reject
        return Document(text=text, id=source_id or f"{relpath}:{index}", metadata=metadata)

    # -- formats ------------------------------------------------------------------------------------------------

    def _read_parquet(self, f: InputFile, start_row: int, columns: list[str] | None,
                      row_groups: tuple[int, ...] | None = None):
        fs, path = url_to_fs(f.url)
        with fs.open(path, "rb") as fh:
            pf = pq.ParquetFile(fh)
            names = pf.schema_arrow.names
            if columns is None and self.text_column not in names:
                raise UsageError(
                    f"input {f.relpath} has no column '{self.text_column}' (columns: {', '.join(names)}): "
                    f"pass --text-column"
                )
            if columns is not None:
                columns = [c for c in columns if c in names]
            starts, at = [], 0  # first absolute row of each row group
            for i in range(pf.metadata.num_row_groups):
                starts.append(at)
                at += pf.metadata.row_group(i).num_rows
            mine = list(row_groups) if row_groups is not None else list(range(pf.metadata.num_row_groups))
            total = max(sum(pf.metadata.row_group(i).num_rows for i in mine), 1)
            done = 0
            for rg in mine:
                n = pf.metadata.row_group(rg).num_rows
                if starts[rg] + n <= start_row:  # already read before a restart: not even opened
                    done += n
                    continue
                row = starts[rg]
                for batch in pf.iter_batches(batch_size=self.batch_size, row_groups=[rg], columns=columns):
                    records = batch.to_pylist()
                    skip = max(0, start_row - row)
                    done += skip
                    for i, rec in enumerate(records[skip:], start=row + skip):
                        done += 1
                        # position: the absolute row after this one (row numbers are the file's, from 1)
                        yield rec, i + 1, None, done / total
                    row += len(records)

    def _read_jsonl(self, f: InputFile, start_offset: int):
        fs, path = url_to_fs(f.url)
        with fs.open(path, "rb") as raw:
            fh = gzip.GzipFile(fileobj=raw) if f.kind == "jsonl.gz" else raw
            try:
                if start_offset:
                    fh.seek(start_offset)
                offset = start_offset
                size = max(f.size, 1)
                for line in fh:
                    offset += len(line)
                    frac = min(raw.tell() / size, 1.0)
                    if not line.strip():
                        continue
                    try:
                        rec = orjson.loads(line)
                        reject = None
                    except orjson.JSONDecodeError as e:
                        rec = None
                        try:
                            line.decode("utf-8")
                            reject = "invalid_utf8" if "surrogate" in str(e).lower() else "malformed_json"
                        except UnicodeDecodeError:
                            reject = "invalid_utf8"
                    yield rec, offset, reject, frac
            except (OSError, EOFError) as e:  # truncated / corrupt gzip
                raise UsageError(f"input {f.relpath} is corrupt after byte {offset}: {e}") from None
            finally:
                if fh is not raw:
                    fh.close()

    def iter_records(self, f: InputFile | Shard, start: int = 0, columns: list[str] | None = None) -> Iterator:
        """(record, position after it, reject reason or None, fraction consumed) for one file or shard."""
        shard = f if isinstance(f, Shard) else Shard(f, size=f.size)
        if shard.kind == "parquet":
            yield from self._read_parquet(shard.file, start, columns, shard.row_groups)
        else:
            yield from self._read_jsonl(shard.file, start)

    def iter_documents(self, rank: int = 0, world_size: int = 1, start: dict | None = None,
                       columns: list[str] | None = None) -> Iterator[Document]:
        files = self.shard(rank, world_size)
        start = start or {}
        file_index, offset, read = start.get("file_index", 0), start.get("offset", 0), start.get("read", 0)
        total_size = sum(f.size for f in files) or 1
        done_size = sum(f.size for f in files[:file_index])
        for fi in range(file_index, len(files)):
            f = files[fi]
            # positional ids FILE:N count records from 1 (parquet rows; jsonl non-blank lines)
            line_no = start.get("line", 0) if fi == file_index else 0
            for rec, pos, reject, frac in self.iter_records(f, offset if fi == file_index else 0, columns):
                if 0 <= self.limit <= read:
                    return
                read += 1
                if f.kind == "parquet":
                    index = line_no = pos
                else:
                    line_no += 1
                    index = line_no
                doc = self._document(rec, f.relpath, index, reject)
                overall = (done_size + frac * f.size) / total_size
                if self.limit > 0:
                    overall = max(overall, read / self.limit)
                doc.metadata[meta.POSITION] = {"file_index": fi, "offset": pos, "line": line_no, "read": read}
                doc.metadata[meta.FRACTION] = min(overall, 1.0)
                yield doc
            done_size += f.size
            offset = 0

    def iter_gaps(self, gaps, rank: int = 0, world_size: int = 1) -> Iterator[Document]:
        """Only the documents of `gaps` (the ledger's uncommitted ranges): seek to each gap's start, read to its
        end, skip the committed range after it by seeking again. `self.seeks` lists where it started reading."""
        for gap in gaps:
            self.seeks.append(gap.start)
            for doc in self.iter_documents(rank, world_size, gap.start):
                if gap.last is not None and meta.read_count(doc) > gap.last:
                    break
                yield doc

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if data:
            yield from data
        self.seeks = []
        if self.resume_dir:
            from finephrase.store.ledger import Ledger

            docs = self.iter_gaps(Ledger(self.resume_dir, rank).gaps(), rank, world_size)
        else:
            self.seeks.append(None)
            docs = self.iter_documents(rank, world_size)
        for doc in docs:
            self.stat_update("documents")
            if meta.REJECTED in doc.metadata:
                self.stat_update(f"bad_{doc.metadata[meta.REJECTED]}")
            yield doc
