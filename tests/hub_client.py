"""The client side of the Hub stand-in (tests/hubstandin.py): its environment, the CLI run with exactly that
environment, and the stand-in started on a port of its own."""

import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO

TOKEN = "hf_FakeTokenForTests0123456789abcdef"
SESSION_SECRET = "hf_SecretInACommandLine0123456789"
REPO_ID = "test-org/finephrase-test"
PROMPTS = ["faq", "math", "table", "tutorial"]
STANDIN = Path(__file__).with_name("hubstandin.py")


def hub_env(tmp_path, endpoint: str, token: str | None = TOKEN) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HF_", "HUGGING_FACE")) and k != "HUGGINGFACE_HUB_CACHE"}
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(tmp_path / "hf-home"), HF_HUB_DISABLE_TELEMETRY="1",
               PYTHONPATH=str(REPO))
    if token:
        env["HF_TOKEN"] = token
    return env


def cli(*args, env: dict, timeout=180) -> subprocess.CompletedProcess:
    """The CLI with exactly `env` (conftest's run_cli adds os.environ, which may hold a real token)."""
    return subprocess.run([sys.executable, "-m", "finephrase.cli", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def start_standin(state: Path, port: int = 0, **opts) -> tuple[subprocess.Popen, int]:
    args = [sys.executable, str(STANDIN), "--state", str(state), "--token", TOKEN, "--port", str(port)]
    for k, v in opts.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    assert line.startswith("ready "), line
    return proc, int(line.split()[1])
