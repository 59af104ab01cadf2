"""`finephrase init DIR`: a new project folder with editable copies of the sbatch scripts, the pipeline
definitions, the prompt library and the bundled sample, for someone who did `pip install finephrase` and has no
checkout. Nothing existing is overwritten."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from finephrase.errors import UsageError
from finephrase.project.bundled import PROJECT_FILES, project_path

SKIP = shutil.ignore_patterns("__pycache__", "*.pyc")


def init_project(dest: Path) -> list[Path]:
    """Copy PROJECT_FILES into `dest` (created if needed) plus an empty slurm-logs/; returns what was created.
    Refuses, before copying anything, if one of them is already there."""
    sources = {rel: project_path(rel) for rel in PROJECT_FILES}
    missing = [str(p) for p in sources.values() if not p.is_dir()]
    if missing:
        raise UsageError(f"this installation lacks its project files ({', '.join(missing)}): reinstall finephrase "
                         f"from a wheel or a checkout")
    there = [rel for rel in (*PROJECT_FILES, "slurm-logs") if (dest / rel).exists()]
    if there:
        raise UsageError(f"{dest} already holds {', '.join(there)}: choose a new folder (nothing was copied)")
    created = []
    for rel, src in sources.items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(src, dest / rel, ignore=SKIP)
        created.append(dest / rel)
    (dest / "slurm-logs").mkdir()
    created.append(dest / "slurm-logs")
    for script in (dest / "slurm").glob("*.sh"):
        script.chmod(script.stat().st_mode | 0o111)
    return created


def main(args) -> int:
    dest = Path(args.dir)
    created = init_project(dest)
    print(f"created {dest}/ with " + ", ".join(f"{p.relative_to(dest)}/" for p in created))
    print(f"next:\n  cd {dest}\n"
          "  export FINEPHRASE_PROMPTS_DIR=$PWD/prompts   # your edited templates (slurm/*.sh set this themselves)\n"
          "  finephrase rephrase data/sample/python-docs.parquet --prompt faq --limit 20 --output output/sample\n"
          "  python pipelines/sample_faq.py               # or edit and run a pipeline definition\n"
          "  sbatch --array=0-7 slurm/rephrase.sh pipelines/production.py   # on a cluster (docs/slurm.md)")
    return 0


def add_parser(sub):
    p = sub.add_parser(
        "init", help="create a project folder: slurm/, pipelines/, prompts/ and the sample, to edit",
        description="Copy the sbatch scripts (slurm/), the pipeline definitions (pipelines/), the prompt library "
        "(prompts/) and the bundled sample (data/sample/) of this installation into DIR, plus an empty "
        "slurm-logs/. Run the copies from DIR. Templates in DIR/prompts add to and override the built-in ones "
        "when FINEPHRASE_PROMPTS_DIR points there (slurm/rephrase.sh and slurm/stage.sh set it when the submit "
        "folder has prompts/). Refuses a DIR that already holds any of these.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  pip install finephrase && finephrase init my-run && cd my-run")
    p.add_argument("dir", metavar="DIR", help="the project folder (created if missing)")
    p.set_defaults(func=main)
