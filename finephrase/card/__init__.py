"""`finephrase card DIR`: a Hub-ready dataset card, DIR/README.md, for a finished run (or a dedup output).

The card's YAML front matter holds what the Hub and `datasets` read: one config per prompt
(`data_files: <prompt>/*.parquet`, split `train`), `all` (every prompt's files; the default), `rejects`,
`filtered` and `removed` (dedup) when those files exist and are included, license, language, tags, size
category. Its body holds the provenance: source dataset and revision, model and revision, backend and engine
version, sampling, every prompt's text and hash, counts (documents, rows, rejects by reason, filtered, dedup
removals), token totals and the compute (task time, GPU-hours where known).

Every count is computed from the parquet files (rows, rejects by reason, filtered, removed, tokens); settings
and provenance come from manifest.json; the compute from the progress snapshots (as `finephrase status` shows
it). Nothing that is not recorded is made up: an unrecorded revision reads "not recorded". Secrets never reach
the card: anything shaped like a Hugging Face token, and the values of secret-looking environment variables
(HF_TOKEN, *_API_KEY, *_TOKEN, ...), are replaced by `***`.

The folder must be a finished run that passes `finephrase verify` (or, for a dedup output, whose manifest's
`dedup.kept` / `dedup.removed` counts match its files); anything else is refused with one line.

The package, by concern: data.py reads DIR (prompt names, parquet files; whether DIR is a finished run is
verify's answer: verify/finished.py); stats.py computes the numbers (counts, tokens, compute); provenance.py
reads the source, license, engine and model revision from the manifest; privacy.py keeps secrets and local paths
off the card; frontmatter.py builds the YAML; sections.py the body's sections, which markdown.py fills into
template.md (the card's fixed text); command.py is the command and what `publish` shares.
"""

from finephrase.card.command import (
    CARD,
    add_card_options,
    add_parser,
    build_card,
    card_options,
    is_ours,
    main,
    write_card,
)
from finephrase.card.data import RESERVED_CONFIGS, extras_root, prompt_names
from finephrase.card.frontmatter import configs, front_matter, size_category
from finephrase.card.markdown import MARKER, render
from finephrase.card.privacy import TOKEN_RE, public_command, public_path, scrub, secret_values
from finephrase.card.provenance import (
    KNOWN_LICENSES,
    SAMPLE_DESCRIPTION,
    SAMPLE_LICENSE,
    engine,
    license_of,
    model_revision_text,
    sources,
)
from finephrase.card.stats import collect_stats, compute_stats
from finephrase.store.layout import MANIFEST

__all__ = [
    "CARD", "KNOWN_LICENSES", "MANIFEST", "MARKER", "RESERVED_CONFIGS", "SAMPLE_DESCRIPTION", "SAMPLE_LICENSE",
    "TOKEN_RE", "add_card_options", "add_parser", "build_card", "card_options", "collect_stats",
    "compute_stats", "configs", "engine", "extras_root", "front_matter", "is_ours", "license_of",
    "main", "model_revision_text", "prompt_names", "public_command", "public_path", "render",
    "scrub", "secret_values", "size_category", "sources", "write_card",
]
