"""What kind of folder is this: a rephrase run, a dedup output, a decontaminated output, a mix, one of these under
way, or something else (folder_kind, from its marker files); the one-line errors of a command given a folder it
does not read (describe_folder, refuse_folder); the manifest of a run or of an output derived from one
(load_manifest); and how a derived output relates to its source (derivation, source_run)."""

from __future__ import annotations

from pathlib import Path

import orjson

from finephrase.errors import UsageError
from finephrase.store.layout import MANIFEST, read_manifest

MIX_FILE = "mix.json"  # finephrase.mix.MIX_FILE: a mix folder has it and no manifest.json
KINDS = ("run", "dedup", "decontaminated", "mix", "unfinished dedup", "unfinished decontamination", "unfinished mix",
         "other")
# the manifest keys of an output made from another folder's rows (newest step first): its rows live in its prompt
# folders (no ledgers), the rows it took out in removed/, its rejects and filtered lists in the run it came from
DERIVED = ("decontamination", "dedup")


def derivation(manifest: dict) -> tuple[str, dict] | None:
    """(key, record) of the last step that made this folder from another one's rows, or None for a run."""
    for key in DERIVED:
        if isinstance(manifest.get(key), dict):
            return key, manifest[key]
    return None


def source_run(manifest: dict) -> str | None:
    """The rephrase run a derived output's rows come from, through every step (dedup, then decontaminate)."""
    records = [manifest[k] for k in reversed(DERIVED) if isinstance(manifest.get(k), dict)]
    return records[0].get("source") if records else None


def _check_folder(root: Path):
    if not root.exists():
        raise UsageError(f"{root} does not exist")
    if not root.is_dir():
        raise UsageError(f"{root} is not a folder (expected a finephrase output folder)")


def folder_kind(run_dir: str | Path) -> str:
    """What an existing folder is, from its marker files (one of KINDS): a rephrase run or a dedup output
    (manifest.json, with a `dedup` key for the latter), a mix (mix.json), a dedup or mix under way (only its work
    folder, .dedup/ or .mix-tmp/), or something else. Reads at most the manifest."""
    root = Path(run_dir)
    _check_folder(root)
    if (root / MANIFEST).is_file():
        try:
            manifest = read_manifest(root)
        except (OSError, orjson.JSONDecodeError):
            return "run"  # load_manifest says what is wrong with it
        if not isinstance(manifest, dict):
            return "run"
        return "decontaminated" if "decontamination" in manifest else "dedup" if "dedup" in manifest else "run"
    if (root / MIX_FILE).is_file():
        return "mix"
    if (root / ".dedup").is_dir():
        return "unfinished dedup"
    if (root / ".decontam").is_dir():
        return "unfinished decontamination"
    if (root / ".mix-tmp").is_dir():
        return "unfinished mix"
    return "other"


def describe_folder(root: Path, kind: str) -> str:
    """What a folder that is not a rephrase run is, as the start of a one-line error: "OUT is a mix (mix.json)"."""
    if kind in ("dedup", "decontaminated"):
        source = (derivation(load_manifest(root)) or ("", {}))[1].get("source")
        return f"{root} is a {kind if kind == 'decontaminated' else 'dedup'} output of {source or 'an unrecorded run'}"
    return {
        "mix": f"{root} is a mix ({MIX_FILE})",
        "unfinished dedup": f"{root} is an unfinished dedup output (.dedup/, no {MANIFEST} yet: rerun its "
                            f"`finephrase dedup` command to finish it)",
        "unfinished decontamination": f"{root} is an unfinished decontaminated output (.decontam/, no {MANIFEST} "
                                      f"yet: rerun its `finephrase decontaminate` command to finish it)",
        "unfinished mix": f"{root} is an unfinished mix (.mix-tmp/, no {MIX_FILE} yet: rerun its `finephrase mix` "
                          f"command)",
    }.get(kind, f"{root} is not a finephrase run, dedup output or mix (no {MANIFEST} or {MIX_FILE})")


def refuse_folder(root: Path, kind: str, command: str, reads: str = "rephrase runs") -> UsageError:
    """The one-line error for `finephrase COMMAND DIR` on a folder it does not read (kind from folder_kind)."""
    what = describe_folder(root, kind)
    if kind == "mix":
        return UsageError(f"{what}: its shares are in {MIX_FILE}; `finephrase {command}` reads {reads}")
    if kind in ("dedup", "decontaminated"):
        source = (derivation(load_manifest(root)) or ("", {}))[1].get("source")
        return UsageError(f"{what}: `finephrase {command}` reads {reads}; `finephrase {command} {source}` for the "
                          f"folder it came from, `finephrase status {root}` for this one")
    return UsageError(f"{what}; `finephrase {command}` reads {reads}")


def load_manifest(run_dir: str | Path) -> dict:
    """The manifest of a rephrase run or dedup output in run_dir; a one-line UsageError for anything else."""
    root = Path(run_dir)
    _check_folder(root)
    path = root / MANIFEST
    if not path.is_file():
        kind = folder_kind(root)
        if kind == "other":
            raise UsageError(f"{root} is not a finephrase run (no {MANIFEST})")
        raise UsageError(f"{describe_folder(root, kind)}, not a finephrase run")
    try:
        manifest = read_manifest(root)
    except (OSError, orjson.JSONDecodeError) as e:
        raise UsageError(f"{path} cannot be read: {e}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("config"), dict) \
            or "tasks" not in manifest["config"]:
        raise UsageError(f"{root} is not a finephrase run ({MANIFEST} has no config)")
    return manifest
