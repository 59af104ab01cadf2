"""The prompt library: the templates a run can name (`faq`, `format/faq`), found in the library's folders
(templates.library_dirs: the built-in `prompts/`, FINEPHRASE_PROMPTS_DIR, --prompts-dir), as TOML templates
(templates.py) or files in the FinePhrase paper's format (paper_files.py)."""

from __future__ import annotations

import os
from pathlib import Path

from finephrase.errors import UsageError
from finephrase.prompts.paper_files import check_for, find_paper_file, is_paper_file, load_paper_file
from finephrase.prompts.templates import PromptTemplate, library_dirs, load_template_file
from finephrase.store.layout import check_prompt_name


def available_prompts(prompts_dir: str | Path | None = None) -> dict[str, Path]:
    """{name: file} of the library (see `library_dirs`). A folder given explicitly must exist."""
    library: dict[str, Path] = {}
    for n, d in enumerate(library_dirs(prompts_dir)):
        if not d.is_dir():
            if n == 0:
                continue  # an installation without its library: the message below says what to do
            raise UsageError(f"prompts folder {d} does not exist (from --prompts-dir or FINEPHRASE_PROMPTS_DIR)")
        library.update({p.stem: p for p in sorted(d.glob("*.toml"))})
    return dict(sorted(library.items()))


def load_prompt(name_or_path: str, prompts_dir: str | Path | None = None) -> PromptTemplate:
    """A prompt by library name (`faq`), by path to a .toml template, or a file in the paper's format: by its path
    below a prompts folder (`format/faq`, see paper_files.py) or by its own path (`CHECKOUT/prompts/format/faq.md`)."""
    if name_or_path.endswith(".toml"):
        return load_template_file(name_or_path)
    dirs = library_dirs(prompts_dir)
    library = available_prompts(prompts_dir)
    if name_or_path in library:
        return load_template_file(library[name_or_path])
    if found := find_paper_file(name_or_path, dirs):
        return load_paper_file(found[0], found[1], frozenset(library))
    if is_paper_file(name_or_path):
        return load_paper_file(name_or_path, None, frozenset(library))
    names = ", ".join(library) or "(none found)"
    if "/" in name_or_path or os.sep in name_or_path:
        raise UsageError(f"unknown prompt '{name_or_path}': no {name_or_path}.md or .txt in the prompts folders "
                         f"({', '.join(map(str, dirs[1:])) or 'pass --prompts-dir CHECKOUT/prompts'})")
    raise UsageError(
        f"unknown prompt '{name_or_path}'. Available: {names}. See `finephrase prompts`, "
        f"or pass a path to a .toml template or a paper-format .md file"
    )


def load_prompts(spec: str | list[str], prompts_dir: str | Path | None = None) -> list[PromptTemplate]:
    """`faq,math` or ['faq', 'math'] -> templates; refuses duplicates and names the run folder reserves."""
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise UsageError("no prompt given: pass --prompt NAME[,NAME...]")
    templates = [load_prompt(n, prompts_dir) for n in names]
    seen = set()
    for t in templates:
        check_prompt_name(t.name)
        if t.name in seen:
            raise UsageError(f"prompt '{t.name}' given twice")
        seen.add(t.name)
    return templates


def template_now(name: str, manifest: dict, prompts_dir: str | Path | None = None) -> PromptTemplate:
    """The template `name` of a run as it applies now (what `finephrase gate` re-checks with): a paper-format
    prompt as the run's manifest recorded it, its check from its sidecar or well-known name when its file is still
    there; a library template as the library has it now."""
    record = next((r for r in manifest.get("prompts", []) if r.get("name") == name), {})
    if record.get("format") != "paper":
        return load_prompt(name, prompts_dir)
    check = record.get("check") or {}
    path = Path(record["path"]) if record.get("path") else None
    origin = "the run's manifest"
    if path is not None and path.is_file():
        check, origin = check_for(path)
    return PromptTemplate(name=name, family=record["family"], version=int(record["version"]),
                          template=record["template"], description=record.get("description", ""),
                          path=record.get("path"), placeholders=tuple(record["placeholders"]),
                          check_items=tuple(sorted(check.items())), check_origin=origin)

