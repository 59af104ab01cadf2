"""The run folder's owner: the names finephrase itself uses in the folders it writes, and how files are written.

A run folder (`finephrase rephrase`), a dedup output and a mix output share one layout:

    DIR/manifest.json            what the folder is, its settings and counts (read_manifest / write_manifest)
    DIR/<prompt>/*.parquet       published rows, one folder per prompt (a mix: train/)
    DIR/rejects/<prompt>/        rejected generations and bad records
    DIR/filtered/                documents the source selection left out
    DIR/removed/                 rows dedup removed
    DIR/.ledger/                 the commit ledger, locks and progress snapshots (finephrase/store/ledger.py)
    DIR/logs/                    datatrove's and the model server's logs

A prompt cannot take a name the layout or the dataset card uses (`RESERVED_NAMES`): it would collide with a
folder, or `mix` and the card would mistake it for one. `check_prompt_name` refuses it when prompts are loaded.

Every file that says a folder is in some state (manifest, settings, card, snapshots, data files) is written
with `durable_write`: a temporary file, fsynced, renamed over the target, and the folder fsynced, so after a
crash the file is either the old one or the new one, never empty or torn.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import orjson

from finephrase.errors import UsageError
from finephrase.store.locks import FOLDER_LOCK, FOLDER_LOCK_HOLDER, folder_lock

MANIFEST = "manifest.json"
LOCK = FOLDER_LOCK  # serializes manifest updates between the tasks of one run (finephrase/store/locks.py)
LEDGER_DIR = ".ledger"
REJECTS = "rejects"
FILTERED = "filtered"
REMOVED = "removed"
FLAGGED = "flagged"  # a decontamination audit's rows that overlap a benchmark (copies: they stay in the data)
LOGS = "logs"
# what finephrase itself puts into a folder before it is a run: it does not make the folder foreign
OWN_FILES = frozenset({FOLDER_LOCK, FOLDER_LOCK_HOLDER, LOGS})
TRAIN = "train"  # a mix output's rows
ALL_CONFIG = "all"  # the card's config of every prompt's rows
# folder and config names of finephrase's own: no prompt may be called so
RESERVED_NAMES = frozenset({REJECTS, FILTERED, REMOVED, FLAGGED, LOGS, TRAIN, ALL_CONFIG, "manifest", "server"})
# what is not a prompt's folder in a run, dedup or mix output
NOT_PROMPT_DIRS = frozenset({REJECTS, FILTERED, REMOVED, FLAGGED, LOGS, TRAIN})


def check_prompt_name(name: str) -> None:
    if name in RESERVED_NAMES:
        raise UsageError(f"prompt name '{name}' is reserved: finephrase uses it for its own folders or dataset "
                         f"configs ({', '.join(sorted(RESERVED_NAMES))}); rename the template")


def fsync_dir(path: str | Path) -> None:
    """Make a rename inside `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace_durably(path: str | Path, write) -> Path:
    """`write(file)` into a temporary file beside `path`, fsync it, rename it over `path`, fsync the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a name of this writer's own: two processes replacing one file never share (and steal) a temporary file
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident() & 0xFFFFFF:06x}.tmp")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return path


def durable_write(path: str | Path, data: bytes | str) -> Path:
    """Write `data` to `path` atomically and durably: tmp file, fsync, rename, fsync the folder."""
    return _replace_durably(path, lambda f: f.write(data.encode("utf-8") if isinstance(data, str) else data))


def durable_write_table(table, path: str | Path, **parquet_options) -> Path:
    """A parquet file, written the way `durable_write` writes bytes (zstd unless told otherwise)."""
    import pyarrow.parquet as pq

    return _replace_durably(path, lambda f: pq.write_table(table, f, **{"compression": "zstd", **parquet_options}))


def read_manifest(root: str | Path) -> dict:
    """DIR/manifest.json as it is: the one place it is read (OSError, orjson.JSONDecodeError as they come).
    Commands reading a folder they were pointed at use store/folders.py's load_manifest (one-line errors)."""
    return orjson.loads((Path(root) / MANIFEST).read_bytes())


def recorded_tasks(root: str | Path) -> int | None:
    """The task count of the run in `root` once it has begun (its manifest says), else None."""
    return read_manifest(root)["config"]["tasks"] if (Path(root) / MANIFEST).is_file() else None


def write_manifest(root: str | Path, manifest: dict) -> Path:
    return durable_write(Path(root) / MANIFEST, orjson.dumps(manifest, option=orjson.OPT_INDENT_2))


def output_lock(out: Path):
    """Serialize updates of `out` between the tasks of one run (SLURM array tasks start together): see
    finephrase/store/locks.py (flock, or an atomically created holder file where the filesystem has no flock)."""
    return folder_lock(out)


class StreamedParquet:
    """A parquet file written batch by batch, as `durable_write_table` writes a table: into a temporary file
    beside `path`, renamed over it by `commit()` (fsync first). Created on the first non-empty batch, so a file
    that gets no rows is never written (`datasets` refuses empty files); `commit()` returns the rows written."""

    def __init__(self, path: str | Path, schema):
        self.path, self.schema, self.rows = Path(path), schema, 0
        self._tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident() & 0xFFFFFF:06x}.tmp")
        self._writer = None

    def write(self, table) -> None:
        import pyarrow.parquet as pq

        if not table.num_rows:
            return
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self._tmp, self.schema, compression="zstd")
        self._writer.write_table(table.select(self.schema.names).cast(self.schema))
        self.rows += table.num_rows

    def commit(self) -> int:
        if self._writer is not None:
            self._writer.close()
            with open(self._tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(self._tmp, self.path)
            fsync_dir(self.path.parent)
            self._writer = None
        return self.rows

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._tmp.unlink(missing_ok=True)
            self._writer = None
