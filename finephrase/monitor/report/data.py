"""Reading a run for `finephrase report`: the committed chunks only (the files the ledger lines list, read with
pyarrow, only the needed columns), the ledgers themselves and `manifest.json`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from finephrase.errors import UsageError
from finephrase.store.layout import MANIFEST, read_manifest


def check_is_run(root: Path) -> None:
    """A one-line UsageError unless `root` is a rephrase run: a dedup output (no ledgers, its rows already
    plotted from the run it came from), a mix or any other folder is named and pointed to what reads it."""
    from finephrase.store.folders import folder_kind, refuse_folder

    if not root.is_dir():
        raise UsageError(f"{root} is not a finephrase run ({'not a folder' if root.exists() else 'it does not exist'})")
    kind = folder_kind(root)
    if kind != "run":
        raise refuse_folder(root, kind, "report")
    if source := _compacted_from(root):
        raise UsageError(f"{root} is a compaction of {source} (shards, no ledgers): `finephrase report {source}` "
                         f"plots the run")


def _compacted_from(root: Path) -> str | None:
    """The source of a compacted folder (`finephrase compact`), read leniently (load_run says what else is wrong
    with a manifest)."""
    import orjson

    try:
        manifest = read_manifest(root)
    except (OSError, orjson.JSONDecodeError):
        return None
    return (manifest.get("compacted") or {}).get("source") if isinstance(manifest, dict) else None


@dataclass
class PromptData:
    name: str
    hash: str
    input_tokens: list = field(default_factory=list)  # numpy arrays, aligned per row
    output_tokens: list = field(default_factory=list)
    rejects: Counter = field(default_factory=Counter)  # reason -> count

    @property
    def rows(self) -> int:
        return len(self.output_tokens)


@dataclass
class RunData:
    root: Path
    manifest: dict
    prompts: dict[str, PromptData]
    filtered: Counter
    ledgers: dict
    documents: int
    chunks: int
    ledger_rows: Counter
    ledger_rejects: Counter
    ledger_output_tokens: int
    problems: list[str]
    rejected_tokens: dict  # relative path of a rejects file -> output tokens of its rejected generations


def load_run(run_dir: str | Path) -> RunData:
    import numpy as np
    import orjson
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from finephrase.store.ledger import all_ledgers

    root = Path(run_dir)
    check_is_run(root)
    try:
        manifest = read_manifest(root)
        prompt_hashes = dict(manifest["config"]["prompts"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        raise UsageError(f"{root / MANIFEST} is not a readable finephrase manifest") from None
    ledgers = all_ledgers(root)
    prompts = {name: PromptData(name, h) for name, h in prompt_hashes.items()}
    files, documents, chunks, ledger_output_tokens, ledger_rows, ledger_rejects = _ledger_totals(root, ledgers)
    problems = []

    rejected_tokens = {}

    def read(folder: str, columns: list[str]):
        paths = files.get(folder, [])
        present = [p for p in paths if p.is_file()]
        if len(present) < len(paths):
            problems.append(f"{len(paths) - len(present)} committed file(s) in {folder}/ are missing "
                            f"(run `finephrase verify {root}`)")
        if not present:
            return None
        tables = []
        for p in present:
            tables.append(pq.read_table(p, columns=columns))
            if folder.startswith("rejects/"):
                rejected_tokens[f"{folder}/{p.name}"] = int(pc.sum(tables[-1]["output_tokens"]).as_py() or 0)
        return pa.concat_tables(tables)

    for name, pd in prompts.items():
        t = read(name, ["input_tokens", "output_tokens"])
        if t is not None:
            pd.input_tokens = t["input_tokens"].fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
            pd.output_tokens = t["output_tokens"].fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        else:
            pd.input_tokens = np.zeros(0, dtype=np.int64)
            pd.output_tokens = np.zeros(0, dtype=np.int64)
        t = read(f"rejects/{name}", ["reject_reason", "output_tokens"])
        if t is not None:
            pd.rejects = _value_counts(t["reject_reason"])
    t = read("filtered", ["filter_reason"])
    filtered = _value_counts(t["filter_reason"]) if t is not None else Counter()

    file_rows = Counter({n: p.rows for n, p in prompts.items() if p.rows})
    file_rejects = Counter({f"{n}/{r}": c for n, p in prompts.items() for r, c in p.rejects.items()})
    if +ledger_rows != file_rows or +ledger_rejects != file_rejects:
        problems.append("the counts in the parquet files differ from the ledgers' counts "
                        f"(run `finephrase verify {root}`); the tables below count the files")
    return RunData(root, manifest, prompts, filtered, ledgers, documents, chunks, ledger_rows, ledger_rejects,
                   ledger_output_tokens, problems, rejected_tokens)


def _ledger_totals(root: Path, ledgers: dict) -> tuple[dict[str, list[Path]], int, int, int, Counter, Counter]:
    """From the ledgers' committed chunks: the committed files by relative folder, documents, chunks, output
    tokens, rows and rejects."""
    files: dict[str, list[Path]] = {}
    documents = chunks = output_tokens = 0
    rows, rejects = Counter(), Counter()
    for rank in sorted(ledgers):
        for e in ledgers[rank].entries:
            chunks += 1
            documents += e.get("docs", 0)
            output_tokens += e.get("output_tokens", 0)
            rows.update(e.get("rows", {}))
            rejects.update(e.get("rejects", {}))
            for rel in e.get("files", []):
                folder, _, _ = rel.rpartition("/")
                files.setdefault(folder, []).append(root / rel)
    return files, documents, chunks, output_tokens, rows, rejects


def _value_counts(col) -> Counter:
    import pyarrow.compute as pc

    out = Counter()
    for item in pc.value_counts(col.fill_null("(null)")).to_pylist():
        out[item["values"]] += item["counts"]
    return out
