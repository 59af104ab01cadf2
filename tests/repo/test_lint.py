"""The code stays clean: `ruff check` (configured in pyproject.toml: unused and undefined names, syntax errors,
lines over 120 characters) passes on the whole repository."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO


def test_ruff_is_clean():
    ruff = Path(sys.executable).with_name("ruff")
    exe = str(ruff) if ruff.exists() else shutil.which("ruff")
    if exe is None:
        pytest.skip("ruff is not installed (it comes with the dev extra: make install)")
    r = subprocess.run([exe, "check", "--output-format", "concise", "."], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
