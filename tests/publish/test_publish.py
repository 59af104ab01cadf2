"""`finephrase publish`: a resumable upload through the real huggingface_hub client.

There is no Hub here, so the client talks (HF_ENDPOINT) to tests/hubstandin.py, a STAND-IN for the Hub, NOT the
Hub: it answers the endpoints huggingface_hub 2.4.0 uses to create a dataset repo and upload a folder, injects
429 and 5xx answers, and is SIGKILLed once mid-upload. What is tested is our command and the client's behaviour
under those faults. The stand-in answers "regular" to preupload, so the client never uses Xet (the stand-in does
not speak it); see its docstring.

The run folder comes from a real `finephrase rephrase` against tests/fakeserver.py (a stand-in model server):
80 documents x 4 prompts, one chunk per document, so 300+ data files (more than one commit's worth), plus
rejects (documents marked FLAKY: the fake server answers 500) and filtered documents (int_score 0).
"""

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from conftest import REPO, run_cli, small_rows, write_parquet
from fakeserver import FakeServer
from hub_client import PROMPTS, REPO_ID, SESSION_SECRET, TOKEN, cli, hub_env, start_standin
from hubstandin import read_events, read_tree



@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("publish")
    rows = small_rows(80)
    for r in rows[:3]:
        r["text"] = "FLAKY " + r["text"]
    src = write_parquet(root / "in" / "docs.parquet", rows)
    out = root / "run"
    fake = FakeServer().start()
    try:
        r = run_cli("rephrase", src, "--prompt", ",".join(PROMPTS), "--output", out, "--backend", "endpoint",
                    "--endpoint-url", fake.url, "--chunk-size", "1", "--max-retries", "0", "--where",
                    "int_score >= 1", timeout=300)
    finally:
        fake.stop()
    assert r.returncode == 0, r.stderr[-2000:]
    assert list((out / "rejects").rglob("*.parquet")) and list((out / "filtered").glob("*.parquet"))
    # a token-shaped string in a recorded command line: it must not reach the Hub
    m = orjson.loads((out / "manifest.json").read_bytes())
    m["sessions"][0]["command"] += f" --note {SESSION_SECRET}"
    (out / "manifest.json").write_bytes(orjson.dumps(m, option=orjson.OPT_INDENT_2))
    return out


def expected_upload(run: Path) -> dict[str, bytes]:
    """What the repo must hold: every committed data file, the card, the manifest with secrets scrubbed."""
    files = [p for pattern in ("*/*.parquet", "rejects/*/*.parquet") for p in run.glob(pattern)]
    files = [p for p in files if p.parent.name in PROMPTS or p.parent.name == "filtered"]
    want = {p.relative_to(run).as_posix(): p.read_bytes() for p in files}
    want["README.md"] = (run / "README.md").read_bytes()
    want["manifest.json"] = (run / "manifest.json").read_bytes().replace(SESSION_SECRET.encode(), b"hf_***")
    return want


def test_publish_survives_faults_and_a_killed_hub_and_resumes(run_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    state = tmp_path / "hub-state"
    # first life of the stand-in: scheduled and random 429 / 5xx, and every commit after the first one hangs
    hub, port = start_standin(state, seed=7, fault_rate=0.1, faults="create:429,preupload:429,commit:503,commit:500",
                              hang_after_commits=1)
    env = hub_env(tmp_path, f"http://127.0.0.1:{port}")
    cmd = [sys.executable, "-m", "finephrase.cli", "publish", str(run), "--repo", REPO_ID, "--private"]
    log1 = tmp_path / "first.err"
    with open(log1, "w") as err:
        first = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        deadline = time.time() + 60
        while not any(e["event"] == "hang" for e in read_events(state)):
            assert time.time() < deadline and first.poll() is None, log1.read_text()[-3000:]
            time.sleep(0.2)
        assert sum(e["event"] == "commit" for e in read_events(state)) == 1
        failed_before = log1.read_text().count("failed (")
        hub.send_signal(signal.SIGKILL)  # the Hub dies mid-upload
        hub.wait()
        # the client notices and retries the commit with backoff; a user or a job's time limit stops it meanwhile
        while log1.read_text().count("failed (") <= failed_before:
            assert time.time() < deadline + 30 and first.poll() is None, log1.read_text()[-3000:]
            time.sleep(0.2)
        first.send_signal(signal.SIGTERM)
        out1, _ = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
        if hub.poll() is None:
            hub.kill()
    err1 = log1.read_text()
    assert first.returncode == 130, err1[-3000:]
    # the message is among the last lines (a retry may still be logged after it)
    assert any(line.startswith("publish interrupted: what is committed stays")
               for line in err1.strip().splitlines()[-4:]), err1[-3000:]
    partial = read_tree(state, REPO_ID)
    assert 0 < len(partial) < len(expected_upload(run)) - 2 and "README.md" not in partial

    # second life, same port and state: the rerun continues where the first stopped
    hub, port2 = start_standin(state, port=port, seed=8, fault_rate=0.1, faults="commit:429")
    try:
        second = cli(*cmd[3:], "--retries", "0", env=env)
    finally:
        hub.kill()
        hub.wait()
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"datasets/{REPO_ID}" in second.stdout

    want = expected_upload(run)
    got = read_tree(state, REPO_ID)
    assert sorted(got) == sorted(want)
    assert all(got[p] == want[p] for p in want), [p for p in want if got[p] != want[p]]
    assert len([p for p in want if p.endswith(".parquet")]) > 300

    events = read_events(state)
    commits = [e for e in events if e["event"] == "commit"]
    faults = [e for e in events if e["event"] == "fault"]
    assert any(f["code"] == 429 for f in faults) and any(f["code"] >= 500 for f in faults), faults
    assert 3 <= len(commits) <= 6, commits  # data in a few commits, then the card + manifest
    assert all(c["files"] < 100 for c in commits)  # the Hub's limit per commit (the stand-in enforces it too)
    assert sum(c["files"] for c in commits) == len(want)  # nothing committed twice: the rerun skipped them
    assert commits[-1]["summary"].startswith("Dataset card") and commits[-1]["files"] == 2
    assert not [e for e in events if e["event"] in ("unhandled", "unauthorized", "error")]

    # the token: sent to the Hub (no 401 above) and nowhere else
    for text in (out1, err1, second.stdout, second.stderr, (run / "README.md").read_text()):
        assert TOKEN not in text and SESSION_SECRET not in text
    assert all(TOKEN.encode() not in b and SESSION_SECRET.encode() not in b for b in got.values())


def written(run: Path) -> dict[str, bytes]:
    """The files of `run` but verify's verdict cache (.verify/, which the checks before a publish keep)."""
    return {p.relative_to(run).as_posix(): p.read_bytes() for p in run.rglob("*")
            if p.is_file() and ".verify" not in p.relative_to(run).parts}


def test_dry_run_lists_and_uploads_nothing_without_a_token(run_dir, tmp_path):
    env = hub_env(tmp_path, "http://127.0.0.1:9", token=None)  # nothing listens there
    before = written(run_dir)
    r = cli("publish", run_dir, "--repo", REPO_ID, "--dry-run", env=env)
    assert r.returncode == 0, r.stderr
    files = [p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*.parquet")]
    for f in files:
        assert f"  {f}\n" in r.stdout
    assert f"total: {len(files) + 2:,} files" in r.stdout
    assert f"datasets/{REPO_ID}" in r.stdout and "nothing is uploaded" in r.stdout
    assert "left out: .ledger/" in r.stdout and "logs/" in r.stdout
    assert "token: none found" in r.stdout
    # the Hub is not asked, so whether the repo exists is unknown: the plan says what the real run does
    assert "visibility: not chosen" in r.stdout and "--private or --public" in r.stdout
    assert written(run_dir) == before  # no card written

    r = cli("publish", run_dir, "--repo", REPO_ID, "--dry-run", "--no-rejects", "--private", env=env)
    assert "visibility: private if created" in r.stdout
    assert r.returncode == 0 and "rejects/" not in r.stdout.split("left out:")[0] \
        and "filtered/" not in r.stdout.split("left out:")[0]


def test_without_a_token_one_line_saying_how_to_log_in(run_dir, tmp_path):
    r = cli("publish", run_dir, "--repo", REPO_ID, "--no-verify", env=hub_env(tmp_path, "http://127.0.0.1:9", None))
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "hf auth login" in r.stderr and "HF_TOKEN" in r.stderr


def test_bad_repo_name_is_refused(run_dir, tmp_path):
    r = cli("publish", run_dir, "--repo", "no-namespace", "--dry-run", env=hub_env(tmp_path, "http://127.0.0.1:9"))
    assert r.returncode == 2 and "ORG/NAME" in r.stderr and r.stderr.strip().count("\n") == 0


def test_hub_errors_are_one_line_without_the_token(run_dir, tmp_path):
    hub, port = start_standin(tmp_path / "hub-state")
    wrong = "hf_WrongTokenNotAccepted0123456789"
    try:
        r = cli("publish", run_dir, "--repo", REPO_ID, "--no-verify", "--private",
                env=hub_env(tmp_path, f"http://127.0.0.1:{port}", token=wrong))
    finally:
        hub.kill()
        hub.wait()
    assert r.returncode == 2
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: publish to {REPO_ID} stopped: the Hub answered HTTP 401") and "write access" in last
    assert wrong not in r.stderr + r.stdout


def test_a_new_repo_needs_private_or_public_an_existing_one_neither(run_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    before = written(run)
    state = tmp_path / "hub-state"
    hub, port = start_standin(state)
    env = hub_env(tmp_path, f"http://127.0.0.1:{port}")
    try:
        refused = cli("publish", run, "--repo", REPO_ID, env=env)
        assert refused.returncode == 2, refused.stderr
        assert refused.stderr.strip().count("\n") == 0 and "Traceback" not in refused.stderr, refused.stderr
        assert refused.stderr.startswith(f"error: {REPO_ID} does not exist yet") and "--private" in refused.stderr \
            and "--public" in refused.stderr, refused.stderr
        assert not any(e["event"] in ("create", "commit") for e in read_events(state))  # nothing sent
        assert not (state / "repos.json").exists() or REPO_ID not in (state / "repos.json").read_text()
        assert written(run) == before  # nothing written either (not even the card)

        public = cli("publish", run, "--repo", REPO_ID, "--public", "--no-verify", env=env)
        assert public.returncode == 0, public.stderr[-3000:]
        assert [e["private"] for e in read_events(state) if e["event"] == "create"] == [False]
        assert orjson.loads((state / "repos.json").read_bytes())[f"datasets/{REPO_ID}"]["private"] is False

        again = cli("publish", run, "--repo", REPO_ID, "--no-verify", env=env)  # exists: keeps its visibility
        assert again.returncode == 0, again.stderr[-3000:]
        assert "are in the repo already" in again.stderr
        assert sum(e["event"] == "create" for e in read_events(state)) == 1

        private = cli("publish", run, "--repo", REPO_ID, "--private", "--no-verify", env=env)
        assert private.returncode == 2 and "exists and is public" in private.stderr, private.stderr
    finally:
        hub.kill()
        hub.wait()
    assert sorted(read_tree(state, REPO_ID)) == sorted(expected_upload(run))
