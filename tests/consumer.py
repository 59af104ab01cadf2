"""What a consumer of our output sees: every parquet file has rows (the installed `datasets` refuses a 0-row file
and fails its whole config), and every config a dataset card declares loads with the installed `datasets`.
Used on every folder the suite produces: rephrase runs, dedup outputs, mixes."""

from pathlib import Path

import pyarrow.parquet as pq
import yaml


def data_files(root: Path) -> list[Path]:
    """Every parquet file a user could publish or load: hidden folders (.ledger, .dedup, .mix-tmp) left out."""
    root = Path(root)
    return sorted(p for p in root.rglob("*.parquet")
                  if not any(part.startswith(".") for part in p.relative_to(root).parts))


def assert_no_empty_parquet(root: Path) -> int:
    files = data_files(root)
    empty = [p.relative_to(root).as_posix() for p in files if pq.ParquetFile(p).metadata.num_rows == 0]
    assert not empty, f"empty parquet files in {root}: {empty}"
    return len(files)


def card_configs(root: Path) -> list[dict]:
    text = (Path(root) / "README.md").read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text[4:text.index("\n---\n", 4)])["configs"]


def load_every_config(root: Path, cache_dir: Path) -> dict[str, int]:
    """{config: rows} for every config of root's README.md, each loaded with the installed `datasets`."""
    import datasets

    out = {}
    for c in card_configs(root):
        name = c["config_name"]
        out[name] = datasets.load_dataset(str(root), name, split="train", cache_dir=str(cache_dir)).num_rows
        assert out[name] > 0, f"config {name} of {root} loads no rows"
    return out
