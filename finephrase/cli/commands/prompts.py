"""`finephrase prompts [list|show NAME]`: the prompt library (finephrase/prompts/templates.py)."""

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
    from finephrase.prompts.templates import load_prompt

    t = load_prompt(name, prompts_dir)
    print(f"name: {t.name}\nfamily: {t.family}\nversion: {t.version}\nhash: {t.hash}\nfile: {t.path}")
    if t.description:
        print(f"description: {t.description}")
    if t.extract_tag:
        print(f"extract_tag: {t.extract_tag}")
    if t.system:
        print(f"\n--- system ---\n{t.system.rstrip()}")
    print(f"\n--- template ---\n{t.template.rstrip()}")
    return 0


def list_library(prompts_dir: str | None) -> int:
    from finephrase.prompts.templates import available_prompts, load_template_file

    library = available_prompts(prompts_dir)
    if not library:
        raise UsageError("no prompt templates found (this installation has no built-in library): pass --prompts-dir "
                         "or set FINEPHRASE_PROMPTS_DIR")
    rows = [load_template_file(path) for path in library.values()]
    w = max(len(t.name) for t in rows)
    fw = max(len(t.family) for t in rows)
    print(f"{'NAME':<{w}}  {'FAMILY':<{fw}}  VER  HASH              DESCRIPTION")
    for t in sorted(rows, key=lambda t: (t.family, t.name)):
        print(f"{t.name:<{w}}  {t.family:<{fw}}  {t.version:>3}  {t.hash}  {t.description}")
    return 0
