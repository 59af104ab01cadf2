"""What never reaches the Hub: secrets (token-shaped strings, the values of secret-looking environment variables
and the stored Hub token) are replaced by `***`; local paths and the program's path in recorded command lines are
reduced to what is public."""

from __future__ import annotations

import os
import re
from pathlib import Path

# -- secrets --------------------------------------------------------------------------------------------------

TOKEN_RE = re.compile(r"hf_[A-Za-z0-9]{6,}")
_SECRET_NAME = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|ACCESS_KEY|PRIVATE_KEY|CREDENTIALS?)", re.I)


def secret_values() -> list[str]:
    """Values that must never be printed or written: secret-looking environment variables and the stored Hub
    token (read locally, never sent anywhere by this function)."""
    values = {v for k, v in os.environ.items() if _SECRET_NAME.search(k) and len(v) >= 8}
    try:  # the token file of `hf auth login` (read directly: no OIDC exchange or other request)
        from huggingface_hub import constants

        tok = Path(constants.HF_TOKEN_PATH).read_text().strip()
        if len(tok) >= 8:
            values.add(tok)
    except Exception:  # no token file: nothing to add
        pass
    return sorted(values, key=len, reverse=True)


def scrub(text: str, secrets: list[str] | None = None) -> str:
    """`text` with every secret value and every token-shaped string replaced."""
    for s in secret_values() if secrets is None else secrets:
        text = text.replace(s, "***")
    return TOKEN_RE.sub("hf_***", text)


# -- local paths ----------------------------------------------------------------------------------------------

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# argv[0] of `python -m finephrase.cli` (finephrase/cli.py in runs made before the cli package)
_OWN_SCRIPTS = ("finephrase/cli/__main__.py", "finephrase/cli/main.py", "finephrase/cli.py",
                "finephrase/__main__.py")


def public_path(path: str, root: Path | None = None) -> str:
    """A path as the card shows it: URLs (hf://, https://, ...) and relative paths as they are; an absolute or
    home (~/) path relative to DIR when inside it, else its last component. Local folders and home directories
    never reach the Hub."""
    if not path or _URL.match(path) or not path.startswith(("/", "~")):
        return path
    p = Path(path).expanduser()
    if root is not None:
        try:
            rel = p.resolve().relative_to(Path(root).resolve()).as_posix()
            return rel if rel != "." else Path(root).resolve().name
        except (ValueError, OSError):
            pass
    return p.name or path.rstrip("/").rsplit("/", 1)[-1]


def _public_argument(arg: str) -> str:
    """One word of a recorded command line with its local paths reduced: `--output=/x/run` -> `--output=run`,
    `/x/a.toml,faq` -> `a.toml,faq`."""
    if arg.startswith("-") and "=" in arg:
        opt, value = arg.split("=", 1)
        return f"{opt}={_public_argument(value)}"
    if _URL.match(arg):
        return arg
    return ",".join(public_path(part) for part in arg.split(","))


def public_command(command: str) -> str:
    """A recorded command line (`" ".join(sys.argv)`) without local paths: the program (a venv's
    `/x/.venv/bin/finephrase`, or finephrase/cli/__main__.py of `python -m finephrase.cli`) as `finephrase`, other
    absolute paths as their last component; URLs stay."""
    words = command.split(" ")
    if not words or not words[0]:
        return command
    prog = words[0]
    if Path(prog).name.startswith("finephrase") or prog.endswith(_OWN_SCRIPTS):
        prog = "finephrase"
    else:
        prog = public_path(prog)
    return " ".join([prog, *(_public_argument(w) if w else w for w in words[1:])])
