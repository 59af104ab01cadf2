"""The vLLM server's flags, checked against the installed vLLM before anything starts.

A flag the installed vLLM does not have, or a package a flag needs (vLLM itself; arctic-inference for the
`suffix` speculative method on vLLM releases that import it), would otherwise stop every task of an array at
server start, after its queue wait. `check_server(server)` (called by `finephrase.run.runner` before the output
folder is touched, and by `VllmServer.start` before the process is launched) turns that into ONE line naming the flag or
package and the command that installs it (a UsageError: exit 2), in seconds.

How: `vllm` importable? then vLLM's own argument parser (`make_arg_parser(FlexibleArgumentParser())`, the parser
`vllm serve` and the API server use) parses the command line, in a child process (importing vLLM loads torch; the
run's process stays small). Where that parser cannot be built, the flags listed by `--help=all` are used instead.
A checker that itself fails (not a refusal) only warns: the server start then says what is wrong.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging
import re
import shutil
import subprocess
import sys
from pathlib import Path

from finephrase.errors import UsageError

log = logging.getLogger(__name__)

PINNED_VLLM = "0.32.0"  # pyproject.toml [gpu], requirements/lock-gpu.txt
PINNED_ARCTIC = "0.1.1"  # the version vLLM 0.32's own error message names for suffix decoding
INSTALL = 'make install-gpu (pip install -c requirements/lock-gpu.txt -e ".[gpu]")'
CHECK_TIMEOUT = 300.0  # seconds for the child that imports vLLM (torch, CUDA libraries) and parses
REFUSED = 2  # the child's exit code for a refusal (one line on stdout)

# where make_arg_parser lives, newest first (0.34: common; 0.32-0.33: launchers; older: openai)
_PARSER_MODULES = ("vllm.entrypoints.common.cli_args", "vllm.entrypoints.launchers.cli_args",
                   "vllm.entrypoints.openai.cli_args")
_SPEC_FLAGS = ("--speculative-config", "--speculative_config", "-sc")


class _Refused(Exception):
    pass


# -- the pieces (pure: tested with a stub parser) ----------------------------------------------------------------


def speculative_method(flags: list[str]) -> str | None:
    """The `method` of the last --speculative-config in `flags` (None when there is none or it is not JSON)."""
    method = None
    for i, arg in enumerate(flags):
        name, eq, value = arg.partition("=")
        if name in _SPEC_FLAGS:
            value = value if eq else (flags[i + 1] if i + 1 < len(flags) else "")
            try:
                method = (json.loads(value) or {}).get("method")
            except (ValueError, AttributeError):
                method = None
        elif name.replace("_", "-") == "--speculative-config.method" and eq:
            method = value
    return method


def missing_package(flags: list[str], have=None, suffix_needs_arctic=None) -> str | None:
    """One line naming a package the command needs and lacks, or None. `have(name)`: whether a module can be
    imported (default: importlib's find_spec, nothing imported); `suffix_needs_arctic()`: whether the installed
    vLLM's suffix method imports arctic_inference (default: looked up in its files)."""
    have = have or (lambda name: importlib.util.find_spec(name) is not None)
    if not have("vllm"):
        return f"vLLM is not installed (the vllm backend needs vllm=={PINNED_VLLM}): {INSTALL}"
    needs = suffix_needs_arctic or _suffix_needs_arctic
    if speculative_method(flags) == "suffix" and needs() and not have("arctic_inference"):
        return (f"--speculative-config method 'suffix' needs the arctic-inference package, which is not installed: "
                f"pip install arctic-inference=={PINNED_ARCTIC} ({INSTALL}), or use method 'ngram' (docs/models.md)")
    return None


def _suffix_needs_arctic() -> bool:
    """vLLM <= 0.33 implements `suffix` with arctic_inference (v1/spec_decode/suffix_decoding.py); 0.34 has its
    own. Read from the installed files: importing vLLM is what the child process is for."""
    spec = importlib.util.find_spec("vllm")
    for root in (spec.submodule_search_locations or []) if spec else []:
        f = Path(root) / "v1" / "spec_decode" / "suffix_decoding.py"
        if f.is_file() and "arctic_inference" in f.read_text(errors="replace"):
            return True
    return False


def _flag_names(text: str) -> list[str]:
    return [t.split("=", 1)[0] for t in text.split() if t.startswith("-")]


def check_flags(flags: list[str], parser: argparse.ArgumentParser, version: str = "") -> str | None:
    """Parse `flags` (the server's command line after the launcher) with `parser`, vLLM's own: None when it
    accepts them, else one line naming the flag."""
    def error(message):
        raise _Refused(message)

    parser.error = error  # argparse would print usage and exit
    vllm = f"vLLM {version}".rstrip()
    try:
        parser.parse_args(list(flags))
    except _Refused as e:
        message = " ".join(str(e).split())
        if message.startswith("unrecognized arguments:"):
            unknown = _flag_names(message.split(":", 1)[1]) or [message.split(":", 1)[1].strip()]
            return (f"the installed {vllm} has no flag {', '.join(unknown)}: install the pinned vLLM "
                    f"(vllm=={PINNED_VLLM}: {INSTALL}) or remove the flag from the recipe / --vllm-arg")
        return f"the installed {vllm} refuses the server's flags ({message}): fix the flag in the recipe / --vllm-arg"
    except (TypeError, ValueError) as e:
        return f"the installed {vllm} refuses the server's flags ({' '.join(str(e).split())})"
    return None


def check_flags_by_help(flags: list[str], help_text: str, version: str = "") -> str | None:
    """The fallback: every flag of `flags` must appear in vLLM's `--help=all` output."""
    known = set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w.-]*)", help_text))
    unknown = [f for f in (a.split("=", 1)[0] for a in flags if a.startswith("-"))
               if f.split(".", 1)[0].replace("_", "-") not in known and f not in known]
    if unknown:
        vllm = f"vLLM {version}".rstrip()
        return (f"the installed {vllm} has no flag {', '.join(unknown)} (its --help does not list it): install the "
                f"pinned vLLM (vllm=={PINNED_VLLM}: {INSTALL}) or remove the flag from the recipe / --vllm-arg")
    return None


def vllm_parser() -> argparse.ArgumentParser | None:
    """vLLM's own `serve` argument parser, found where the installed release keeps it; None if it has none."""
    try:
        from vllm.utils.argparse_utils import FlexibleArgumentParser
    except ImportError:
        try:
            from vllm.utils import FlexibleArgumentParser
        except ImportError:
            return None
    for name in _PARSER_MODULES:
        try:
            make = importlib.import_module(name).make_arg_parser
        except (ImportError, AttributeError):
            continue
        return make(FlexibleArgumentParser(prog="vllm serve"))
    return None


def _help_text() -> str:
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--help=all"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=CHECK_TIMEOUT).stdout


def check_installed(flags: list[str]) -> str | None:
    """In the process that may import vLLM (the child): one line if the installed vLLM refuses `flags`."""
    missing = missing_package(flags)
    if missing:
        return missing
    import vllm

    version = getattr(vllm, "__version__", "")
    parser = vllm_parser()
    if parser is not None:
        return check_flags(flags, parser, version)
    return check_flags_by_help(flags, _help_text(), version)


# -- the caller's side --------------------------------------------------------------------------------------------


_checked: set[tuple] = set()  # command lines already accepted in this process (a restart is not checked again)


def check_command(flags: list[str], launcher_exe: str | None = None) -> None:
    """Raise a one-line UsageError when the installed vLLM would refuse `flags` (`--model M` and what follows)."""
    key = (sys.executable, launcher_exe, tuple(flags))
    if key in _checked:
        return
    if importlib.util.find_spec("vllm") is None and launcher_exe:
        log.warning("vllm is not importable here; %s's flags are not checked before the start", launcher_exe)
        return
    missing = missing_package(flags)
    if missing:
        raise UsageError(missing)
    try:
        r = subprocess.run([sys.executable, "-m", __name__, *flags], capture_output=True, text=True,
                           timeout=CHECK_TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        log.warning("the vLLM flag check took over %.0f s: not checked", CHECK_TIMEOUT)
        return
    if r.returncode == REFUSED and r.stdout.strip():
        raise UsageError(r.stdout.strip().splitlines()[-1])
    if r.returncode != 0:
        tail = (r.stderr.strip().splitlines() or ["no output"])[-1]
        log.warning("the vLLM flag check could not run (exit %s: %s): not checked", r.returncode, tail)
        return
    _checked.add(key)


def check_server(server) -> None:
    """Preflight for a run: a VllmServer's flags against the installed vLLM; nothing for other servers."""
    flags = getattr(server, "engine_flags", None)
    if getattr(server, "backend", None) != "vllm" or not callable(flags):
        return
    flags = list(flags())
    if "--port" in flags[:-1]:  # the port is chosen at start: the preflight's check stands for every start
        flags[flags.index("--port") + 1] = "0"
    check_command(flags, shutil.which("vllm"))


def main(argv: list[str]) -> int:
    line = check_installed(argv)
    if line:
        print(line)
        return REFUSED
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
