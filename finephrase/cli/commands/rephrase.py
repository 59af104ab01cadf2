"""`finephrase rephrase INPUT... --prompt P --output OUT`: the main job. Its flags are declared in
finephrase/run/settings.py; this module parses them and hands them to `RunConfig.for_backend` and `execute`."""

from __future__ import annotations

import argparse

from finephrase.process.array_task import task_of
from finephrase.run.settings import add_rephrase_arguments, config_kwargs
from finephrase.store.layout import recorded_tasks

# also the epilog of `finephrase --help`
EXAMPLES = """\
examples:
  # rephrase the bundled sample into FAQs with the embedded CPU model (SmolLM2-135M-Instruct, llama.cpp),
  # constrained to the FAQ template's grammar
  finephrase rephrase data/sample/python-docs.parquet --prompt faq --output output/sample --limit 20 \
      --constrain-format

  # four production formats from a FineWeb-Edu shard on the Hub, high-quality pool only, on a running vLLM
  finephrase rephrase hf://datasets/HuggingFaceFW/fineweb-edu/sample/10BT/000_00000.parquet \\
      --prompt faq,math,table,tutorial --where "int_score >= 4" \\
      --backend endpoint --endpoint-url http://localhost:8000 --output output/fwe-hq

  finephrase verify output/sample        # exactly one row or reject per (document, prompt)?
  finephrase prompts                  # the prompt library
"""


def add_parser(sub):
    p = sub.add_parser(
        "rephrase",
        help="rephrase documents with one or more prompts (the main job)",
        description="Read INPUT documents, send one request per (document, prompt) to a served model, gate the "
        "generations (each template's own shape check, non-answers, copies, off-topic, language: docs/quality.md), "
        "and commit them chunk by chunk to OUTPUT/<prompt>/*.parquet (rejects, with their reason, to "
        "OUTPUT/rejects/<prompt>/). Rerunning the same command resumes an interrupted run.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_rephrase_arguments(p)
    p.set_defaults(func=main)


def task_count(args) -> int:
    """--tasks; with --rank: the rule of every stage (process/array_task.py), the existing run's count first."""
    if args.rank is None:
        return args.tasks or 1
    return task_of(args.rank, args.tasks, recorded_tasks(args.output))[1]


def main(args) -> int:
    from finephrase.prompts.library import load_prompts
    from finephrase.run.config import RunConfig
    from finephrase.run.runner import execute

    cfg = RunConfig.for_backend(**config_kwargs(args, prompts=load_prompts(args.prompt, args.prompts_dir),
                                                tasks=task_count(args)))
    manifest = execute(cfg, overwrite=args.overwrite)
    if cfg.rank is not None:  # one task of a larger run: its own outcome
        from finephrase.store.ledger import unfinished_tasks

        return 1 if unfinished_tasks(cfg.output, [cfg.rank]) else 0
    return 0 if manifest["status"] == "finished" else 1
