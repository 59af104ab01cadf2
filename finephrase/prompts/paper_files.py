"""Prompt files in the FinePhrase paper's format, loaded as they are.

The paper's repository (huggingface/finephrase) keeps each prompt as a markdown file: the instruction, then the
document where `[TEXT]` stands (a few files say `[ORIGINAL DOCUMENT]` or `[DOCUMENT SEGMENT]`; the paper's
pipeline substitutes all three). Its loader reads the file and strips the whitespace around it; the result, with
the document substituted, is the only user message. finephrase sends exactly that, byte for byte. Two things
differ from the paper's runs, on purpose: a long document is cut by tokens, to fit the context (the paper cut
the message at 8 x max_tokens characters), and the output goes through the quality gate.

Names come from the path below the prompts folder: `format/faq.md` is the prompt `format-faq` of family
`format`, version 1 (a file given by its own path: its folder and its stem). The shape check comes from a sidecar
beside the file (`faq.check.toml`: a `[check]` table, or its keys at the top level), else from the file's
well-known name (prompts/paper/checks.toml: faq, math, table, tutorial, the Nemotron and BeyondWeb baselines),
else there is none.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from finephrase.errors import UsageError
from finephrase.prompts.templates import PromptTemplate, default_prompts_dir

PAPER_PLACEHOLDERS = ("[TEXT]", "[ORIGINAL DOCUMENT]", "[DOCUMENT SEGMENT]")
PAPER_SUFFIXES = (".md", ".txt")
SIDECAR_SUFFIX = ".check.toml"
WELL_KNOWN_CHECKS = "paper/checks.toml"  # in the library folder


def is_paper_file(name: str) -> bool:
    return name.endswith(PAPER_SUFFIXES)


def paper_name(relative: Path) -> tuple[str, str]:
    """(name, family) of a paper-format file at `relative` below its prompts folder: format/faq.md ->
    ("format-faq", "format"); a file at the top: (its stem, "paper")."""
    parts = relative.with_suffix("").parts
    return "-".join(parts), (parts[0] if len(parts) > 1 else "paper")


def find_paper_file(name: str, dirs: list[Path]) -> tuple[Path, Path] | None:
    """(file, its prompts folder) of `format/faq` (or `format/faq.md`) in the folders, later ones first."""
    if Path(name).is_absolute() or ".." in Path(name).parts:
        return None
    for d in reversed(dirs):
        for suffix in ("",) if is_paper_file(name) else PAPER_SUFFIXES:
            if (d / f"{name}{suffix}").is_file():
                return d / f"{name}{suffix}", d
    return None


def paper_files(dirs: list[Path]) -> dict[str, tuple[Path, Path]]:
    """{`format/faq`: (file, its prompts folder)} of the paper-format files below the folders (later ones win)."""
    found: dict[str, tuple[Path, Path]] = {}
    for d in dirs:
        if d.is_dir():
            for suffix in PAPER_SUFFIXES:
                for path in sorted(d.rglob(f"*{suffix}")):
                    found[path.relative_to(d).with_suffix("").as_posix()] = (path, d)
    return dict(sorted(found.items()))


def load_paper_file(path: str | Path, root: str | Path | None = None,
                    library_names: frozenset[str] = frozenset()) -> PromptTemplate:
    """The prompt in `path` (below the prompts folder `root`, else named by its folder and stem), refused in
    one line when it cannot be the paper's request: unreadable, empty, without a placeholder, or named like a
    template of the library (`library_names`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8").strip()  # as the paper's loader reads it
    except FileNotFoundError:
        raise UsageError(f"prompt file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"prompt file {path} cannot be read as UTF-8 text: {e}") from None
    if not text:
        raise UsageError(f"prompt file {path} is empty")
    if not any(p in text for p in PAPER_PLACEHOLDERS):
        raise UsageError(f"prompt file {path} has no [TEXT] placeholder: the paper's format puts the document "
                         f"where [TEXT] stands (or a .toml template with {{{{document}}}})")
    relative = path.relative_to(root) if root else Path(path.parent.name) / path.name
    name, family = paper_name(relative)
    if name in library_names:
        raise UsageError(f"prompt file {path} would be named '{name}', which a template of the library has: keep "
                         f"it in a folder (format/faq.md is 'format-faq') or rename it")
    check, origin = check_for(path)
    return PromptTemplate(name=name, family=family, version=1, template=text,
                          description=f"{relative.as_posix()} (paper format)", path=str(path),
                          placeholders=tuple(p for p in PAPER_PLACEHOLDERS if p in text),
                          check_items=tuple(sorted(check.items())), check_origin=origin)


def check_for(path: Path) -> tuple[dict, str]:
    """(the [check] table of the paper-format file at `path`, where it comes from): its sidecar, else its
    well-known name, else no shape check."""
    from finephrase.quality.formats import validate_spec

    sidecar = path.with_name(path.stem + SIDECAR_SUFFIX)
    if sidecar.is_file():
        data = _read_toml(sidecar)
        spec = data.get("check", data)
        return validate_spec(spec, str(sidecar)), f"sidecar {sidecar}"
    known = well_known_checks()
    if path.stem in known:
        return dict(known[path.stem]), f"the well-known name '{path.stem}' (prompts/{WELL_KNOWN_CHECKS})"
    return {}, f"none: '{path.stem}' is not a well-known name and there is no {path.stem}{SIDECAR_SUFFIX} beside it"


def well_known_checks() -> dict[str, dict]:
    """{file stem: [check] table} for the paper's prompts, from the library's paper/checks.toml."""
    from finephrase.quality.formats import validate_spec

    path = default_prompts_dir() / WELL_KNOWN_CHECKS
    if not path.is_file():
        return {}
    return {stem: validate_spec(spec, f"{path} [{stem}]") for stem, spec in _read_toml(path).items()}


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UsageError(f"{path} is not valid TOML: {e}") from None
