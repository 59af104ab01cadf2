import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "sample" / "python-docs.parquet"


def run_cli(*args, timeout=600, env=None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "finephrase.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO, env={**os.environ, **(env or {})}, **kw)


def small_rows(n: int, chars: int = 350) -> list[dict]:
    """n real documents of the bundled sample, cut to about `chars` characters (fast on the 135M CPU model)."""
    rows = pq.read_table(SAMPLE).slice(0, n).to_pylist()
    for r in rows:
        text = r["text"][:chars]
        r["text"] = text[: text.rfind("\n")] if "\n" in text[50:] else text
    return rows


def write_parquet(path: Path, rows: list[dict], row_group_size: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=row_group_size)
    return path


def read_generations(out: Path, prompt: str) -> list[dict]:
    """Every generation of `prompt` in the run folder `out`: its published rows, then its rejects."""
    return [r for d in (out / prompt, out / "rejects" / prompt) if d.exists() for r in pq.read_table(d).to_pylist()]


@pytest.fixture
def small_docs(tmp_path) -> Path:
    return write_parquet(tmp_path / "in" / "docs.parquet", small_rows(6))


@pytest.fixture(scope="session")
def llama_endpoint():
    """One real llama.cpp server on the packaged SmolLM2-135M-Instruct for the whole session."""
    pytest.importorskip("xllamacpp")
    from finephrase.serving import LlamaCppServer

    server = LlamaCppServer(context_length=1024, log_path=Path(os.environ.get("TMPDIR", "/tmp")) / "fp-test-llama.log")
    server.start()
    yield server.base_url
    server.stop()
