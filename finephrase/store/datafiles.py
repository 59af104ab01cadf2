"""The parquet data files of an output folder, and the rule that none is ever empty.

`datasets` (5.x) refuses a parquet file with 0 rows and fails the whole config, so every writer of rows skips a
table with none, and readers of older folders (card, publish) leave such files out. Counting comes from the
files' footers, which is cheap.
"""

from __future__ import annotations

from pathlib import Path


def parquet_files(folder: Path) -> list[Path]:
    """The finished parquet files directly in `folder`, sorted; never a file being written (hidden `.NAME.tmp`)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix == ".parquet" and not p.name.startswith("."))


def prompt_files(root: Path, prompts: list[str]) -> list[tuple[str, Path]]:
    """(prompt, file) of every data file of the prompts' folders of `root`, in a fixed order: what the tasks of a
    post-run stage deal out (`[rank::tasks]`)."""
    return [(p, f) for p in prompts for f in parquet_files(Path(root) / p)]


def num_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def rows_in(files) -> int:
    """The rows of all these parquet files (their footers)."""
    return sum(num_rows(f) for f in files)


def split_empty(files: list[Path]) -> tuple[list[Path], list[Path]]:
    """(files with rows, files with none)."""
    full, empty = [], []
    for f in files:
        (full if num_rows(f) else empty).append(f)
    return full, empty


def config_paths(rel: str, full: list[Path], empty: list[Path]) -> str | list[str]:
    """The `data_files` path(s) of the folder `rel` for a dataset card, from its split_empty(): the glob
    `rel/*.parquet`, or, where the folder holds empty files that the glob would catch, the list of its files that
    have rows."""
    if not empty:
        return f"{rel}/*.parquet"
    return [f"{rel}/{f.name}" for f in full]
