"""A changed filter is a changed run: filters enter the fingerprint by what they do (their class, parameters and
the source of the functions they call), so a rerun with a changed filter is refused instead of "already finished".

Runs use the stand-in server (tests/fakeserver.py, not a model): what is tested is the fingerprint, not generation.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import textwrap
import threading

import orjson
import pytest
from conftest import REPO, small_rows, write_parquet
from datatrove.pipeline.filters import GopherQualityFilter, GopherRepetitionFilter, LambdaFilter
from datatrove.pipeline.filters.base_filter import BaseFilter
from fakeserver import FakeServer

from finephrase.errors import UsageError
from finephrase.pipeline.filters.behaviour import describe_filter
from finephrase.pipeline.filters.quality import QualityFilter
from finephrase.pipeline.filters.select import NamedFilter
from finephrase.pipeline.inference.rephrase import Rephrase
from finephrase.pipeline.readers.resumable import ResumableReader
from finephrase.pipeline.shape import inspect_pipeline, selection_fingerprint, without_filter_behaviour
from finephrase.pipeline.writers.chunk_writer import ChunkWriter
from finephrase.prompts.library import load_prompts
from finephrase.run.config import RunConfig
from finephrase.run.manifest import fingerprint
from finephrase.run.runner import run
from finephrase.serving import Endpoint
from finephrase.serving.client import Sampling

MIN_WORDS = 5


def min_words(doc, n: int = 1) -> bool:
    """Enough words?"""
    return len(doc.text.split()) >= n  # a comment is not behaviour


def _desc(f) -> dict:
    desc, missing = describe_filter(f)
    assert not missing, missing
    return desc


def _fn(f):
    return _desc(f)["params"]["filter_function"]


# --- what a filter is described by ---------------------------------------------------------------------------------

def test_a_lambda_is_described_by_its_own_expression_even_inside_a_longer_line():
    a, b = LambdaFilter(lambda doc: len(doc.text) > 1), LambdaFilter(lambda doc: len(doc.text) > 2)  # two on a line
    assert _fn(a) == "lambda doc: len(doc.text) > 1" and _fn(b) == "lambda doc: len(doc.text) > 2"
    wrapped = LambdaFilter(lambda doc: (len(doc.text)  # comment
                                        > 3))
    assert _fn(wrapped) == "lambda doc: (len(doc.text) > 3)"
    assert _desc(a)["class"] == "datatrove.pipeline.filters.lambda_filter.LambdaFilter"


def test_a_function_is_described_by_its_source_globals_and_arguments():
    f = NamedFilter(functools.partial(min_words, n=3), "short")
    fn = _fn(f)
    assert fn["keywords"] == {"n": 3} and fn["partial"]["defaults"] == [1]
    assert fn["partial"]["source"] == "def min_words(doc, n: int = 1) -> bool:\n    return len(doc.text.split()) >= n"
    assert _fn(NamedFilter(functools.partial(min_words, n=4), "short")) != fn
    uses_global = _fn(LambdaFilter(lambda doc: min_words(doc, MIN_WORDS)))
    assert uses_global["globals"]["MIN_WORDS"] == 5 and "def min_words" in uses_global["globals"]["min_words"]["source"]
    threshold = 7
    closure = _fn(LambdaFilter(lambda doc: len(doc.text) > threshold))
    assert closure == {"source": "lambda doc: len(doc.text) > threshold", "closure": {"threshold": 7}}


class _OwnFilter(BaseFilter):
    name = "own"

    def __init__(self, k: int):
        super().__init__()
        self.k = k

    def filter(self, doc):
        return len(doc.text) > self.k * MIN_WORDS


def test_stock_and_own_filter_classes_by_parameters_and_a_json_round_trip():
    """Parameters as JSON (tuples, sets, regexes included) that survive manifest.json unchanged: a fingerprint
    that changed on the way through JSON would refuse every rerun."""
    for f in (GopherQualityFilter(), GopherRepetitionFilter(), _OwnFilter(3)):
        desc = _desc(f)
        assert orjson.loads(orjson.dumps(desc)) == desc
        assert describe_filter(f)[0] == desc  # deterministic
    assert _desc(GopherQualityFilter(min_doc_words=60)) != _desc(GopherQualityFilter())
    own = _desc(_OwnFilter(3))
    assert own["params"] == {"k": 3} and own["class"]["globals"] == {"MIN_WORDS": 5}
    assert "return len(doc.text) > self.k * MIN_WORDS" in own["class"]["source"]
    assert "stats" not in _desc(GopherQualityFilter())["params"]  # datatrove's runtime attributes stay out


def test_what_cannot_be_known_is_reported():
    _, missing = describe_filter(LambdaFilter(eval("lambda doc: True")))
    assert missing == ["<lambda>: its source cannot be read"]
    locked = _OwnFilter(1)
    locked.lock = threading.Lock()
    desc, missing = describe_filter(locked)
    assert desc["params"]["lock"] == "<unknown lock>" and missing and missing[0].startswith("lock:")
    versioned = LambdaFilter(eval("lambda doc: True"))
    versioned.fingerprint = lambda: {"version": 2}  # its own say: no warning
    assert describe_filter(versioned)[0]["fingerprint"] == {"version": 2} and not describe_filter(versioned)[1]
    assert describe_filter(LambdaFilter(str.isascii)) == ({"class": _desc(LambdaFilter(str.isascii))["class"],
                                                            "params": {"filter_function": "builtins.str.isascii"}}, [])


# --- the fingerprint ------------------------------------------------------------------------------------------------

# From HEAD's code before filters were fingerprinted by behaviour (prompts aside: their hashes follow the templates):
# runs without user-added filters must keep these fingerprints byte for byte, or they would no longer resume.
# Changed on purpose once since: regeneration (`regenerate`, on by default) and constrained generation by default on
# the embedded backend write other rows (an `attempt` column), so runs made before it are finished with the version
# that started them (manifest.py says so when it refuses them).
_REGENERATE = {"reasons": ["length", "repetition", "empty", "too_short", "copy", "format", "non_answer", "language",
                           "off_topic", "missing_output_tag"], "temperature_step": 0.2, "max_temperature": 1.0}
_EMPTY = {"count": 0, "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}
_NO_SELECTION = {"where": [], "languages": [], "min_chars": None, "max_chars": None, "sample_rate": None,
                 "token_budget": None, "filters": []}
CLI_FINGERPRINTS = {
    "embedded": {"inputs": ["data/in.parquet"], "input_files": _EMPTY, "text_column": "text", "id_column": "id",
                 "limit": -1, "selection": _NO_SELECTION, "backend": "embedded", "model": "SmolLM2-135M-Instruct",
                 "context_length": 2048, "sampling": {"temperature": 0.2, "top_p": 0.9, "top_k": None, "seed": None,
                                                      "max_tokens": 512}, "constrain_format": True,
                 "regenerate": {"max_attempts": 3, **_REGENERATE}, "tasks": 1},
    "vllm_selection": {
        "inputs": ["hf://datasets/x/y"], "input_files": _EMPTY, "text_column": "text", "id_column": "id",
        "limit": -1, "selection": {"where": ["int_score >= 3", "language == en"], "languages": ["en", "fr"],
                                   "min_chars": 100, "max_chars": 20000, "sample_rate": 0.25,
                                   "token_budget": 1000000, "filters": []},
        "backend": "vllm", "model": "HuggingFaceTB/SmolLM2-1.7B-Instruct", "context_length": 8192,
        "sampling": {"temperature": None, "top_p": None, "top_k": None, "seed": 7, "max_tokens": 1024},
        "regenerate": {"max_attempts": 2, **_REGENERATE}, "tasks": 4},
    "endpoint": {"inputs": ["in"], "input_files": _EMPTY, "text_column": "text", "id_column": "id", "limit": -1,
                 "selection": _NO_SELECTION, "backend": "endpoint", "model": "m", "context_length": 1024,
                 "sampling": {"temperature": None, "top_p": None, "top_k": None, "seed": 3, "max_tokens": 96},
                 "chat_template_kwargs": {"enable_thinking": False}, "constrain_format": True,
                 "regenerate": {"max_attempts": 2, **_REGENERATE}, "tasks": 1},
}
CLI_SETTINGS = {
    "embedded": dict(backend="embedded", inputs=["data/in.parquet"], output="out", prompts="faq,table"),
    "vllm_selection": dict(backend="vllm", inputs=["hf://datasets/x/y"], output="out", prompts="faq",
                           where=["int_score >= 3", "language == en"], languages=["en", "fr"], min_chars=100,
                           max_chars=20000, sample_rate=0.25, seed=7, token_budget=1_000_000, tasks=4,
                           max_tokens=1024),
    "endpoint": dict(backend="endpoint", inputs=["in"], output="out", prompts="math", endpoint_url="http://127.0.0.1:9",
                     model="m", context_length=1024, max_tokens=96, seed=3,
                     chat_template_kwargs={"enable_thinking": False}, constrain_format=True),
}


@pytest.mark.parametrize("case", sorted(CLI_SETTINGS))
def test_the_fingerprint_of_a_cli_run_is_unchanged(case, capsys):
    settings = dict(CLI_SETTINGS[case])
    prompts = settings.pop("prompts")
    fp = RunConfig.for_backend(**settings, prompts=load_prompts(prompts)).fingerprint([])
    assert list(fp.pop("prompts")) == prompts.split(",")
    assert orjson.dumps(fp, option=orjson.OPT_SORT_KEYS) == orjson.dumps(CLI_FINGERPRINTS[case],
                                                                         option=orjson.OPT_SORT_KEYS)
    assert capsys.readouterr().err == ""


def test_an_unknown_filter_warns_once_per_run(capsys):
    shape = inspect_pipeline([ResumableReader("in"), LambdaFilter(eval("lambda doc: True")),
                              Rephrase(load_prompts("faq"), Endpoint("http://127.0.0.1:9", "m"), Sampling()),
                              ChunkWriter("out")])
    assert selection_fingerprint(shape) == selection_fingerprint(shape)
    err = capsys.readouterr().err.splitlines()
    assert err == ["warning: filter 👤 Lambda cannot be fingerprinted by its behaviour (<lambda>: its source cannot "
                   "be read): a change to it will not be noticed; give it a name/version (docs/pipelines.md, "
                   "\"Filters and the fingerprint\")"]


def test_a_fingerprint_as_written_before_filter_behaviour():
    """For manifest.py to let a run started before this change resume (its config has filter names only)."""
    shape = inspect_pipeline([ResumableReader("in"), LambdaFilter(lambda doc: True),
                              Rephrase(load_prompts("faq"), Endpoint("http://127.0.0.1:9", "m"), Sampling()),
                              QualityFilter(), LambdaFilter(lambda doc: False), ChunkWriter("out")])
    fp = fingerprint(shape, 1, [])
    old = without_filter_behaviour(fp)
    assert "filter_behaviour" in fp["selection"] and "generation_filter_behaviour" in fp
    assert "filter_behaviour" not in old["selection"] and "generation_filter_behaviour" not in old
    assert old["selection"]["filters"] == old["generation_filters"] == ["👤 Lambda"]
    assert without_filter_behaviour(old) == old
    from finephrase.run.manifest import same_run

    assert same_run(fp, fp) and same_run(old, fp)  # the older manifest resumes
    other = fingerprint(inspect_pipeline([ResumableReader("in"), LambdaFilter(lambda doc: len(doc.text) > 3),
                                          Rephrase(load_prompts("faq"), Endpoint("http://127.0.0.1:9", "m"),
                                                   Sampling()), QualityFilter(), ChunkWriter("out")]), 1, [])
    assert not same_run(fp, other) and not same_run(old, other)  # another list of filters does not


PIPELINE_FILE = """
from datatrove.pipeline.filters import LambdaFilter

from finephrase.pipeline import (ChunkWriter, QualityFilter, Rephrase, ResumableReader, Sampling, Select,
                                 load_prompts, run, where)
from finephrase.serving import Endpoint

pipeline = [
    ResumableReader({src!r}),
    Select(where("int_score >= 0")),
    {source_filter}
    Rephrase(load_prompts("faq"), Endpoint({url!r}), Sampling(max_tokens=64), context_length=1024,
             max_concurrency=4),
    QualityFilter(),
    ChunkWriter({out!r}, chunk_size=3),
]

if __name__ == "__main__":
    run(pipeline, exit_on_error=True)
"""


def _run_file(tmp_path, src, url, out, source_filter: str) -> subprocess.CompletedProcess:
    script = tmp_path / "pipeline.py"
    script.write_text(PIPELINE_FILE.format(src=str(src), url=url, out=str(out), source_filter=source_filter))
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=REPO)


def test_a_changed_lambda_in_a_pipeline_file_is_a_changed_run(tmp_path):
    """The issue's case: `>= 20` raised to `>= 40` in a copied pipeline is refused with one line saying the
    selection changed; the same lambda resumes (here: finds the run finished); an unknown filter warns once."""
    rows = [{**r, "id": f"d{i}", "int_score": 3} for i, r in enumerate(small_rows(6))]
    src, out = write_parquet(tmp_path / "in.parquet", rows), tmp_path / "out"
    fake = FakeServer().start()
    try:
        r = _run_file(tmp_path, src, fake.url, out, "LambdaFilter(lambda doc: len(doc.text.split()) >= 20),")
        assert r.returncode == 0, r.stderr
        config = orjson.loads((out / "manifest.json").read_bytes())["config"]
        assert config["selection"]["filter_behaviour"] == [{
            "filter": "👤 Lambda", "class": "datatrove.pipeline.filters.lambda_filter.LambdaFilter",
            "params": {"filter_function": "lambda doc: len(doc.text.split()) >= 20"}}]
        r = _run_file(tmp_path, src, fake.url, out, "LambdaFilter(lambda doc: len(doc.text.split()) >= 20),  # same")
        assert r.returncode == 0 and "has already finished" in r.stderr, r.stderr
        r = _run_file(tmp_path, src, fake.url, out, "LambdaFilter(lambda doc: len(doc.text.split()) >= 40),")
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "holds a run with other settings (selection (filter_behaviour: " in r.stderr
        assert ">= 20" in r.stderr and ">= 40" in r.stderr

        unknown = tmp_path / "unknown"
        r = _run_file(tmp_path, src, fake.url, unknown, 'LambdaFilter(eval("lambda doc: True")),')
        assert r.returncode == 0, r.stderr
        assert [line for line in r.stderr.splitlines() if "cannot be fingerprinted" in line] == [
            "warning: filter 👤 Lambda cannot be fingerprinted by its behaviour (<lambda>: its source cannot be read):"
            " a change to it will not be noticed; give it a name/version (docs/pipelines.md, \"Filters and the "
            "fingerprint\")"]
    finally:
        fake.stop()


def test_a_named_filter_with_changed_parameters_after_rephrase_is_refused(tmp_path):
    """A NamedFilter on the generations: the same one resumes, one with another parameter is refused."""
    src, out = write_parquet(tmp_path / "in.parquet", small_rows(4)), tmp_path / "out"
    fake = FakeServer().start()

    def pipeline(n: int) -> list:
        return [ResumableReader(str(src)),
                Rephrase(load_prompts("faq"), Endpoint(fake.url, "fake-model"), Sampling(max_tokens=64),
                         context_length=1024, max_concurrency=4, progress_tty=False),
                QualityFilter(), NamedFilter(functools.partial(min_words, n=n), "too_short"),
                ChunkWriter(str(out), chunk_size=2)]

    try:
        manifest = run(pipeline(3), exit_on_error=False)
        assert manifest["status"] == "finished"
        assert manifest["config"]["generation_filters"] == ["🔻 too_short"]
        assert manifest["config"]["generation_filter_behaviour"][0]["params"]["filter_function"]["keywords"] == {
            "n": 3}
        assert run(pipeline(3), exit_on_error=False)["status"] == "finished"  # the same: resumes
        with pytest.raises(UsageError, match=r"other settings \(generation_filter_behaviour: "):
            run(pipeline(4), exit_on_error=False)
    finally:
        fake.stop()


def test_finephrase_pipeline_exports_what_a_pipeline_file_needs_lazily():
    code = ("import sys, finephrase.pipeline as p\n"
            "assert 'finephrase.pipeline.inference.rephrase' not in sys.modules\n"
            "from finephrase.pipeline import ResumableReader, Select, NamedFilter, Rephrase, QualityFilter, "
            "ChunkWriter, Sampling, load_prompts, run, slurm_task, where, TokenBudget, QualityGate, VllmServer\n"
            "assert all(getattr(p, n) for n in p.__all__)\n"
            "import finephrase.cli\n")
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=REPO,
                       timeout=120)
    assert r.returncode == 0, r.stderr
