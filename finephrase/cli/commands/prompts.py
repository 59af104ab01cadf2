"""`finephrase prompts [list|show NAME]`: the prompt library (finephrase/prompts/templates.py) and the prompt files
in the paper's format below --prompts-dir (finephrase/prompts/paper_files.py)."""

from __future__ import annotations

from finephrase.errors import UsageError
from finephrase.run.settings import add_prompts_dir_argument


def add_parser(sub):
    p = sub.add_parser("prompts", help="list the prompt library, or show one prompt",
                       description="List the prompt templates (name, family, version, hash), or show one.")
    p.add_argument("action", nargs="?", choices=["list", "show"], default="list")
    p.add_argument("name", nargs="?", help="prompt to show")
    add_prompts_dir_argument(p)
    p.set_defaults(func=main)


def main(args) -> int:
    if args.action == "show":
        if not args.name:
            raise UsageError("usage: finephrase prompts show NAME")
        return show(args.name, args.prompts_dir)
    return list_library(args.prompts_dir)


def show(name: str, prompts_dir: str | None) -> int:
    from finephrase.prompts.library import load_prompt

    t = load_prompt(name, prompts_dir)
    print(f"name: {t.name}\nfamily: {t.family}\nversion: {t.version}\nhash: {t.hash}\nfile: {t.path}")
    if t.description:
        print(f"description: {t.description}")
    if t.extract_tag:
        print(f"extract_tag: {t.extract_tag}")
    if t.paper_format:
        print(f"format: the paper's (the file's text, stripped, is the user message; {' / '.join(t.placeholders)} "
              f"replaced by the document)")
    check = ", ".join(f"{k} = {v!r}" for k, v in t.check.items() if k != "grammar") or "no shape check"
    print(f"check: {check}" + (f"\ncheck from: {t.check_origin}" if t.check_origin else ""))
    if t.system:
        print(f"\n--- system ---\n{t.system.rstrip()}")
    print(f"\n--- template ---\n{t.template.rstrip()}")
    return 0


def list_library(prompts_dir: str | None) -> int:
    from finephrase.prompts.library import available_prompts
    from finephrase.prompts.templates import load_template_file

    library = available_prompts(prompts_dir)
    papers = _paper_rows(prompts_dir, frozenset(library))
    if not library and not papers:
        raise UsageError("no prompt templates found (this installation has no built-in library): pass --prompts-dir "
                         "or set FINEPHRASE_PROMPTS_DIR")
    rows = [load_template_file(path) for path in library.values()]
    w = max((len(t.name) for t in rows), default=4)
    fw = max((len(t.family) for t in rows), default=6)
    print(f"{'NAME':<{w}}  {'FAMILY':<{fw}}  VER  HASH              DESCRIPTION")
    for t in sorted(rows, key=lambda t: (t.family, t.name)):
        print(f"{t.name:<{w}}  {t.family:<{fw}}  {t.version:>3}  {t.hash}  {t.description}")
    if papers:
        print("\nin the paper's format (--prompt FOLDER/NAME, e.g. format/faq; `finephrase prompts show` says which "
              "check applies):")
        for key, line in papers:
            print(f"  {key:<{w + fw}}  {line}")
    return 0


def _paper_rows(prompts_dir: str | None, library: frozenset[str]) -> list[tuple[str, str]]:
    """(FOLDER/NAME, what it loads as, or why it is refused) of the paper-format files below the user's
    prompts folders (--prompts-dir, FINEPHRASE_PROMPTS_DIR)."""
    from finephrase.prompts.paper_files import load_paper_file, paper_files
    from finephrase.prompts.templates import library_dirs

    dirs = library_dirs(prompts_dir)[1:]
    rows = []
    for key, (path, root) in paper_files(dirs).items():
        try:
            t = load_paper_file(path, root, library)
            rows.append((key, f"{t.name} ({t.hash}, check: {t.check.get('kind', 'none')})"))
        except UsageError as e:
            rows.append((key, "not loadable: " + str(e).removeprefix(f"prompt file {path} ")))
    return rows
