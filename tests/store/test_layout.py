"""The run folder's owner (finephrase/store/layout.py): durable atomic writes, and reserved names refused when
prompts are loaded (a prompt called `train` or `all` would collide with a folder or a card config)."""

import os
import re

import pytest
from conftest import run_cli, small_rows, write_parquet

from finephrase.errors import UsageError
from finephrase.prompts.library import load_prompts
from finephrase.store import layout


def test_durable_write_fsyncs_file_and_folder(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(layout.os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")),
                                                        real(fd)))
    path = layout.durable_write(tmp_path / "sub" / "manifest.json", '{"status": "finished"}')
    assert path.read_text() == '{"status": "finished"}'
    names = [os.path.basename(p) for p in synced]  # the data (a temporary name of this writer's own), the rename
    assert len(names) == 2 and re.fullmatch(rf"\.manifest\.json\.{os.getpid()}\.[0-9a-f]{{6}}\.tmp", names[0]), names
    assert names[1] == "sub"
    assert sorted(p.name for p in path.parent.iterdir()) == ["manifest.json"]  # no temporary file left
    layout.write_manifest(tmp_path, {"a": 1})
    assert layout.read_manifest(tmp_path) == {"a": 1}


def test_durable_write_table(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = pa.table({"id": ["a", "b"]})
    path = layout.durable_write_table(t, tmp_path / "removed" / "00000.parquet")
    assert pq.read_table(path).equals(t) and [p.name for p in path.parent.iterdir()] == ["00000.parquet"]


def _template(folder, name):
    body = (f'name = "{name}"\nfamily = "test"\nversion = 1\n'
            + 'template = """Read it.\n\n{{document}}\n\nSum it up."""\n')
    (folder / f"{name}.toml").write_text(body, encoding="utf-8")


@pytest.mark.parametrize("name", sorted(layout.RESERVED_NAMES))
def test_reserved_prompt_names_are_refused_when_loaded(tmp_path, name):
    _template(tmp_path, name)
    with pytest.raises(UsageError, match=f"prompt name '{name}' is reserved"):
        load_prompts(name, prompts_dir=tmp_path)


def test_rephrase_with_a_reserved_prompt_name_starts_nothing(tmp_path):
    """`train` used to rephrase fine, and `finephrase mix` then silently skipped its folder."""
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    _template(prompts, "train")
    src = write_parquet(tmp_path / "docs.parquet", small_rows(2))
    out = tmp_path / "out"
    r = run_cli("rephrase", src, "--prompt", "train", "--prompts-dir", prompts, "--output", out)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("error: prompt name 'train' is reserved")
    assert not out.exists()
