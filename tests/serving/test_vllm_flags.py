"""The vLLM server's flags are checked against the installed vLLM before anything starts (vllm_flags.py): a flag
the parser lacks, or a package a flag needs, is one line naming it and the install command (a UsageError)."""

import argparse
import json
import subprocess
import sys

import pytest
from conftest import REPO, production_flags

from finephrase.errors import UsageError
from finephrase.serving import vllm_flags
from finephrase.serving.vllm import VllmServer
from finephrase.serving.vllm_flags import check_flags, check_flags_by_help, missing_package, speculative_method

SUFFIX = '--speculative-config={"method": "suffix", "num_speculative_tokens": 32}'


def stub_parser(*flags: str) -> argparse.ArgumentParser:
    """Stands in for vLLM's serve parser: --model plus the given flags (all taking a value, JSON for spec)."""
    p = argparse.ArgumentParser(prog="vllm serve")
    p.add_argument("--model")
    for f in flags:
        p.add_argument(f, type=json.loads if "config" in f else str)
    return p


def test_a_flag_the_parser_lacks_is_one_line_naming_it():
    p = stub_parser("--max-num-seqs")
    line = check_flags(["--model", "m", "--max-num-seqs=2048", "--max-num-batched-tokens=32768"], p, "0.9.9")
    assert line is not None and "\n" not in line
    assert "vLLM 0.9.9 has no flag --max-num-batched-tokens" in line
    assert "--max-num-seqs" not in line.split("has no flag")[1].split(":")[0]  # only the missing one is named
    assert 'pip install -c requirements/lock-gpu.txt -e ".[gpu]"' in line
    assert check_flags(["--model", "m", "--max-num-seqs", "8"], stub_parser("--max-num-seqs")) is None


def test_a_bad_value_is_one_line():
    line = check_flags(["--model", "m", "--speculative-config", "{not json"], stub_parser("--speculative-config"))
    assert line is not None and "\n" not in line and "--speculative-config" in line


def test_suffix_without_arctic_inference_is_one_line_naming_it():
    flags = ["--model", "m", SUFFIX]
    line = missing_package(flags, have=lambda name: name == "vllm", suffix_needs_arctic=lambda: True)
    assert line is not None and "\n" not in line
    assert "arctic-inference" in line and "pip install arctic-inference==0.1.1" in line
    # with the package, or on a vLLM whose suffix method needs none, or with another method: nothing to say
    assert missing_package(flags, have=lambda name: True, suffix_needs_arctic=lambda: True) is None
    assert missing_package(flags, have=lambda name: name == "vllm", suffix_needs_arctic=lambda: False) is None
    ngram = ["--model", "m", '--speculative-config={"method": "ngram", "num_speculative_tokens": 8}']
    assert missing_package(ngram, have=lambda name: name == "vllm", suffix_needs_arctic=lambda: True) is None


def test_vllm_missing_is_one_line():
    line = missing_package(["--model", "m"], have=lambda name: False)
    assert "\n" not in line and "vLLM is not installed" in line and "make install-gpu" in line


@pytest.mark.parametrize("flags, method", [
    ([SUFFIX], "suffix"),
    (["--speculative-config", '{"method": "ngram"}'], "ngram"),
    (["-sc", '{"method": "suffix"}', '--speculative_config={"method": "ngram"}'], "ngram"),  # the last one wins
    (["--speculative-config.method=suffix"], "suffix"),
    (["--max-num-seqs=8"], None),
])
def test_speculative_method(flags, method):
    assert speculative_method(flags) == method


def test_help_fallback_names_the_flag():
    help_text = "  --model MODEL\n  --max-num-seqs MAX_NUM_SEQS, --max_num_seqs\n  --speculative-config, -sc\n"
    assert check_flags_by_help(["--model", "m", "--max-num-seqs=4", SUFFIX], help_text) is None
    line = check_flags_by_help(["--model", "m", "--enable-prompt-tokens-details"], help_text, "0.1")
    assert "vLLM 0.1 has no flag --enable-prompt-tokens-details" in line and "\n" not in line


def test_the_recipe_against_a_parser_without_one_of_its_flags():
    flags = production_flags()
    names = {a.split("=", 1)[0] for a in flags if a.startswith("--")}
    lacking = "--enable-prompt-tokens-details"
    p = argparse.ArgumentParser()
    for n in sorted(names - {lacking}):
        p.add_argument(n, nargs="?")
    line = check_flags(flags, p, "0.0.1")
    assert line.startswith("the installed vLLM 0.0.1 has no flag --enable-prompt-tokens-details:"), line


def test_server_start_refuses_before_launching(monkeypatch):
    """Without vLLM importable and without a `vllm` on the PATH: the start is one UsageError, no process."""
    monkeypatch.setattr(vllm_flags.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(vllm_flags.shutil, "which", lambda name: None)
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: pytest.fail("the server was launched"))
    with pytest.raises(UsageError, match="^vLLM is not installed .*make install-gpu"):
        VllmServer("m", extra_args=[SUFFIX]).start()


def test_the_check_runs_in_a_child_and_refuses_with_exit_2(monkeypatch):
    """The child (`python -m finephrase.serving.vllm_flags FLAGS`) answers one line and exit 2; the caller turns
    it into a UsageError. Here vllm is not installed in the child's environment either."""
    r = subprocess.run([sys.executable, "-m", "finephrase.serving.vllm_flags", "--model", "m"], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    if r.returncode == 0:
        pytest.skip("vllm is installed here: the child accepted the flags")
    assert r.returncode == 2 and len(r.stdout.strip().splitlines()) == 1, (r.stdout, r.stderr)
    assert "vLLM is not installed" in r.stdout


def test_a_stand_in_vllm_on_the_path_is_not_refused(monkeypatch, caplog):
    """`vllm` on the PATH from another environment (not importable here): nothing to check with, so a warning."""
    monkeypatch.setattr(vllm_flags.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(vllm_flags.shutil, "which", lambda name: "/elsewhere/bin/vllm")
    vllm_flags.check_server(VllmServer("m"))
    assert "not checked" in caplog.text
