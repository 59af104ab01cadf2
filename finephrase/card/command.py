"""The `finephrase card` command, and what `publish` shares with it: the card's options, building the card of a
folder, and writing it to DIR/README.md (never over a README.md that `finephrase card` did not write)."""

from __future__ import annotations

from pathlib import Path

from finephrase.card.markdown import MARKER, render
from finephrase.card.stats import collect_stats, compute_stats
from finephrase.errors import UsageError
from finephrase.scoring.stats import read_scores
from finephrase.store.layout import durable_write
from finephrase.verify.finished import check_finished, load_run_manifest

CARD = "README.md"


def build_card(root: str | Path, *, verify: bool = True, include_extras: bool = True, repo: str | None = None,
               **opts) -> str:
    root = Path(root)
    manifest = load_run_manifest(root)
    check_finished(root, manifest, verify=verify)
    stats = collect_stats(root, manifest)
    return render(root, manifest, stats, compute_stats(root, manifest), repo=repo, include_extras=include_extras,
                  **opts)


def is_ours(path: Path) -> bool:
    try:
        return MARKER in path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def write_card(root: Path, text: str) -> Path:
    return durable_write(root / CARD, text)


# -- command --------------------------------------------------------------------------------------------------


def add_card_options(p):
    """Options shared by `card` and `publish`."""
    g = p.add_argument_group("card")
    g.add_argument("--license", help="license of the dataset, a Hub license id (default: the source's when known "
                   "(FineWeb / FineWeb-Edu: odc-by; the bundled sample: other, psf-2.0), else `other`)")
    g.add_argument("--pretty-name", help="the card's title (default: '<prompts> rephrasings of <source> by <model>')")
    g.add_argument("--source-dataset", metavar="ORG/NAME",
                   help="the Hub dataset the inputs came from, when they are local copies of it")
    g.add_argument("--source-revision", metavar="REV", help="the source dataset's revision (commit), if not in the "
                   "hf:// input path (hf://datasets/ORG/NAME@REV/...)")
    g.add_argument("--model-revision", metavar="REV", help="the model's revision (commit), if the run did not record "
                   "one (runs record the GGUF's sha256, vLLM's --revision or the cached snapshot's commit)")
    g.add_argument("--no-rejects", action="store_true",
                   help="leave rejects/, filtered/ and removed/ out (their configs; publish: their files)")
    g.add_argument("--scores", metavar="SCORES_DIR", help="a `finephrase score` output of these rows (or of the "
                   "folder they came from): the card gets a Quality scores section")
    g.add_argument("--no-verify", action="store_true",
                   help="do not re-read the inputs to run `finephrase verify`; only check that every task finished")


def card_options(args) -> dict:
    return {"license": args.license, "pretty_name": args.pretty_name, "source_dataset": args.source_dataset,
            "source_revision": args.source_revision, "model_revision": args.model_revision,
            "scores": read_scores(args.scores) if getattr(args, "scores", None) else None}


def add_parser(sub):
    p = sub.add_parser(
        "card", help="write a Hub-ready dataset card (DIR/README.md) for a finished run",
        description="Write DIR/README.md: YAML with one config per prompt plus `all` (and rejects / filtered / "
        "removed), license, tags; and the provenance: source and revision, model, backend and engine, sampling, "
        "every prompt's text and hash, counts (rows, rejects by reason, filtered, dedup removals), token totals, "
        "task time and GPU-hours. Counts come from the parquet files. The run must pass `finephrase verify`. "
        "Then `datasets.load_dataset(DIR, 'faq')` and `load_dataset(DIR, 'all')` work, and so they do on the Hub "
        "after `finephrase publish`.")
    p.add_argument("run_dir", metavar="DIR", help="a finished run's output folder (or a dedup output)")
    p.add_argument("--stdout", action="store_true", help="print the card instead of writing DIR/README.md")
    p.add_argument("--repo", metavar="ORG/NAME", help="the Hub repo named in the card's loading examples")
    p.add_argument("--force", action="store_true",
                   help="overwrite a README.md that was not written by `finephrase card`")
    add_card_options(p)
    p.set_defaults(func=main)


def main(args) -> int:
    root = Path(args.run_dir)
    text = build_card(root, verify=not args.no_verify, include_extras=not args.no_rejects, repo=args.repo,
                      **card_options(args))
    if args.stdout:
        print(text, end="")
        return 0
    path = root / CARD
    if path.exists() and not is_ours(path) and not args.force:
        raise UsageError(f"{path} exists and was not written by `finephrase card`: move it away, or pass --force "
                         f"to overwrite it")
    print(write_card(root, text))
    return 0
