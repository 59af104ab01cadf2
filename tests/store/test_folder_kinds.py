"""`verify`, `status`, `report` and `card` on every kind of folder finephrase writes: a dedup output is checked
and described for what it is, a mix or any other folder is refused with one line that says what it is, and a
card never shows local absolute paths.

The dedup output is a real one: `finephrase dedup` on test_dedup's built run (seconds); the mix a real one too
(test_mix's run and sources through `build_mix`)."""

import shutil
import sys
from pathlib import Path

import orjson
import pytest
import yaml
from conftest import assert_one_line_error
from conftest import run_cli_here as run_cli  # the fast layer: these commands start no model
from synthetic_runs import build_dedup_run, build_mix_run, build_mix_sources


@pytest.fixture(scope="module")
def dedup(tmp_path_factory) -> tuple[Path, Path]:
    """(source run, its dedup output)."""
    root = tmp_path_factory.mktemp("kinds")
    build_dedup_run(root)
    run, out = root / "run", root / "dedup"
    r = run_cli("dedup", run, "--output", out, timeout=300)
    assert r.returncode == 0, r.stderr
    return run, out


@pytest.fixture(scope="module")
def mix(tmp_path_factory) -> Path:
    from finephrase.mix import MixConfig, build_mix

    root = tmp_path_factory.mktemp("kinds-mix")
    build_mix_run(root / "run", n_per_file=20, seed=1, prompts=("faq",), files=1)
    build_mix_sources(root / "src", n=60, seed=2)
    out = root / "mix"
    build_mix(MixConfig(output=str(out), synthetic=[str(root / "run")], sources=[str(root / "src" / "web.parquet")]),
              quiet=True)
    assert (out / "mix.json").is_file() and not (out / "manifest.json").exists()
    return out


def _copy(out: Path, dest: Path) -> Path:
    shutil.copytree(out, dest)
    return dest


def _manifest(d: Path) -> dict:
    return orjson.loads((d / "manifest.json").read_bytes())


def _write_manifest(d: Path, m: dict):
    (d / "manifest.json").write_bytes(orjson.dumps(m, option=orjson.OPT_INDENT_2))


def _front_matter(text: str) -> dict:
    return yaml.safe_load(text.split("---\n")[1])


# -- verify ---------------------------------------------------------------------------------------------------


def test_verify_dedup_output_passes(dedup):
    from finephrase.verify import render, verify

    run, out = dedup
    source = str(run.resolve())
    r = run_cli("verify", out)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "has not finished" not in r.stdout and "missing" not in r.stdout
    r = run_cli("verify", out, "--json")
    assert r.returncode == 0
    rep = orjson.loads(r.stdout)
    assert rep["ok"] and rep["problems"] == []
    assert rep["stats"]["kind"] == "dedup" and rep["stats"]["source"] == source and rep["stats"]["source_checked"]
    assert rep["stats"]["kept/faq"] == 91 and rep["stats"]["removed/faq"] == 9 and rep["stats"]["input/faq"] == 100
    report = verify(out)
    assert report.ok and report.kind == "dedup"
    text = render(report, out)
    assert f"OK: dedup output of {source}" in text and "checked against its source run's rows" in text


def test_verify_dedup_output_finds_duplicates_and_wrong_counts(dedup, tmp_path):
    run, out = dedup
    d = _copy(out, tmp_path / "dup")
    kept = sorted((d / "faq").glob("*.parquet"))[0]
    shutil.copy(kept, d / "faq" / "00009.parquet")  # every faq row now twice
    r = run_cli("verify", d, "--json")
    assert r.returncode == 1
    problems = "\n".join(orjson.loads(r.stdout)["problems"])
    assert "prompt faq: 91 row ids more than once in faq/ and removed/faq/" in problems
    assert "rows kept in faq/ but the manifest's dedup.kept says 91" in problems
    assert "went in (the manifest's dedup.input)" in problems
    assert "prompt table" not in problems
    r = run_cli("verify", d)
    assert r.returncode == 1 and "FAILED: 3 problems" in r.stdout and "  - prompt faq: 91 row ids" in r.stdout

    d = _copy(out, tmp_path / "lost")
    next((d / "removed" / "table").glob("near_*.parquet")).unlink()  # 4 near duplicates lost
    r = run_cli("verify", d, "--json")
    assert r.returncode == 1
    problems = "\n".join(orjson.loads(r.stdout)["problems"])
    assert "prompt table: 0 rows removed as near in removed/table/ but the manifest's dedup.removed says 4" \
        in problems
    assert "prompt table: 4 rows of the source run are neither kept nor removed" in problems


def test_verify_dedup_output_without_its_source_checks_the_manifest(dedup, tmp_path):
    from finephrase.verify import render, verify

    _, out = dedup
    d = _copy(out, tmp_path / "moved")
    m = _manifest(d)
    m["dedup"]["source"] = str(tmp_path / "gone")
    _write_manifest(d, m)
    assert run_cli("verify", d).returncode == 0
    report = verify(d)
    assert report.ok and not report.stats["source_checked"]
    assert "the source run is no longer there" in render(report, d)


# -- status ---------------------------------------------------------------------------------------------------


def test_status_dedup_output_says_what_it_is(dedup):
    run, out = dedup
    source = str(run.resolve())
    r = run_cli("status", out)
    assert r.returncode == 0, r.stderr
    assert f"dedup output of {source}; scope prompt; finished 20" in r.stdout
    assert "kept     faq 91 of 100, table 91 of 100" in r.stdout
    assert "removed  faq 9 (exact 5, near 4), table 9 (exact 5, near 4)" in r.stdout
    assert f"`finephrase status {source}`" in r.stdout
    assert "PENDING" not in r.stdout
    r = run_cli("status", out, "--json")
    assert r.returncode == 0
    rep = orjson.loads(r.stdout)
    assert rep["kind"] == "dedup" and rep["source"] == source and rep["scope"] == "prompt"
    assert rep["kept"] == {"faq": 91, "table": 91} and rep["input"] == {"faq": 100, "table": 100}
    assert rep["removed"] == {"faq": {"exact": 5, "near": 4}, "table": {"exact": 5, "near": 4}}
    assert rep["finished_at"] == _manifest(out)["dedup"]["finished_at"]
    assert rep["source_status"] == f"finephrase status {source}"


def test_status_collect_refuses_a_dedup_output(dedup):
    from finephrase.errors import UsageError
    from finephrase.monitor.status import collect

    run, out = dedup
    with pytest.raises(UsageError, match="is a dedup output of .*no ledgers of its own"):
        collect(out)


# -- refusals -------------------------------------------------------------------------------------------------


def test_report_refuses_a_dedup_output(dedup):
    run, out = dedup
    source = str(run.resolve())
    r = run_cli("report", out)
    assert_one_line_error(r, f"is a dedup output of {source}", "`finephrase report` reads rephrase runs",
                    f"`finephrase report {source}`", f"`finephrase status {out}`")
    assert not (out / "report").exists()


@pytest.mark.parametrize("command", ["verify", "status", "report"])
def test_a_mix_is_refused_with_what_it_is(mix, command):
    r = run_cli(command, mix)
    assert_one_line_error(r, f"{mix} is a mix (mix.json): its shares are in mix.json; `finephrase {command}` reads "
                       f"rephrase runs")
    assert not (mix / "report").exists()


@pytest.mark.parametrize("command", ["verify", "status", "report"])
def test_another_folder_is_refused_with_what_it_is(tmp_path, command):
    (tmp_path / "notes.txt").write_text("hello")
    r = run_cli(command, tmp_path)
    assert_one_line_error(r, f"{tmp_path} is not a finephrase run, dedup output or mix (no manifest.json or mix.json)",
                    f"`finephrase {command}` reads rephrase runs")
    (tmp_path / ".dedup").mkdir()
    r = run_cli(command, tmp_path)
    assert_one_line_error(r, "is an unfinished dedup output", "rerun its `finephrase dedup` command")


# -- card -----------------------------------------------------------------------------------------------------


def test_card_has_no_local_paths(dedup, tmp_path):
    run, out = dedup
    d = _copy(out, tmp_path / "card")
    home = str(Path.home())
    m = _manifest(d)
    m["sessions"] = [{"started_at": m["created_at"], "command":
                      f"{sys.prefix}/bin/finephrase rephrase {run.parent}/in/docs.parquet "
                      f"hf://datasets/HuggingFaceFW/fineweb-edu/sample/10BT/000_00000.parquet --prompt faq,table "
                      f"--output {run} --prompts-dir={home}/prompts --endpoint-url https://example.org:8000/v1"},
                     {"started_at": m["created_at"], "command": f"{Path.cwd()}/finephrase/cli.py rephrase x --output "
                                                                f"{tmp_path}/run"}]
    _write_manifest(d, m)
    r = run_cli("card", d)
    assert r.returncode == 0, r.stderr
    text = (d / "README.md").read_text()
    for local in (str(tmp_path), str(run.parent), str(tmp_path.parent.parent), home, sys.prefix):
        assert local not in text, local
    assert ("finephrase rephrase docs.parquet hf://datasets/HuggingFaceFW/fineweb-edu/sample/10BT/000_00000.parquet "
            "--prompt faq,table --output run --prompts-dir=prompts --endpoint-url https://example.org:8000/v1") in text
    assert "\nfinephrase rephrase x --output run\n" in text
    assert "- source run: `run`; scope: prompt" in text
    assert "counted from the files of the source run `run`" in text
    assert "local input `docs.parquet`" in text


def test_public_paths():
    from finephrase.card import public_command, public_path

    root = Path("/data/out/dedup")
    assert public_path("/data/out/run", root) == "run"
    assert public_path("/data/out/dedup/inner/run", root) == "inner/run"
    assert public_path("hf://datasets/org/name/x.parquet", root) == "hf://datasets/org/name/x.parquet"
    assert public_path("data/sample/python-docs.parquet", root) == "data/sample/python-docs.parquet"
    assert public_path("~/runs/fwe") == "fwe"
    assert public_command("/x/.venv/bin/finephrase rephrase /d/in.parquet --output=/d/out -p faq") == \
        "finephrase rephrase in.parquet --output=out -p faq"
    assert public_command("/repo/finephrase/__main__.py verify /d/out") == "finephrase verify out"


def test_card_without_rows_promises_no_all_config(dedup, tmp_path):
    _, out = dedup
    d = _copy(out, tmp_path / "norows")
    for f in list((d / "faq").glob("*.parquet")) + list((d / "table").glob("*.parquet")):
        f.unlink()
    m = _manifest(d)
    m["dedup"]["kept"] = {"faq": 0, "table": 0}
    m["counts"]["rows"] = {"faq": 0, "table": 0}
    _write_manifest(d, m)
    r = run_cli("card", d, "--stdout")
    assert r.returncode == 0, r.stderr
    meta = _front_matter(r.stdout)
    assert [c["config_name"] for c in meta["configs"]] == ["removed"]
    assert "no rows were published" in r.stdout and "there is no `all` config and no prompt config" in r.stdout
    assert "plus `all`" not in r.stdout and '"all"' not in r.stdout and "| `all`" not in r.stdout
    assert 'removed = load_dataset("ORG/NAME", "removed", split="train")' in r.stdout

    r = run_cli("card", d, "--stdout", "--no-rejects")  # not even the removed rows: no configs at all
    assert r.returncode == 0, r.stderr
    assert "configs" not in _front_matter(r.stdout)
    assert "Nothing to load" in r.stdout and '"all"' not in r.stdout
