"""`finephrase publish DIR --repo ORG/NAME`: upload a finished run to a Hugging Face dataset repo.

    finephrase publish output/fwe --repo my-org/fwe-faq --dry-run     # what would go up; no token needed
    finephrase publish output/fwe --repo my-org/fwe-faq --private     # rerun the same command after a failure

Steps: check the run (as `finephrase card`: finished and passing `finephrase verify`) and the Hub's limits
(hub_limits.py: a selection that would break one is refused, naming `finephrase compact`), refresh DIR/README.md
(the card; a README.md without the card's marker line is the user's and is uploaded as it is), create the repo if
needed, then:

1. the data files (`<prompt>/*.parquet`, and unless --no-rejects `rejects/<prompt>/*.parquet`,
   `filtered/*.parquet`, `removed/<prompt>/*.parquet`) in commits of fewer than 100 files, paced under
   --max-commits-per-hour, skipping the files the repo holds (commits.py);
2. README.md and manifest.json in one last commit, so the configs appear once their files are there.

Modules: selection.py (what goes up), commits.py (batches, pace), hub_errors.py (one-line errors, retries),
dry_run.py, command.py.

Never uploaded: `.ledger/`, `logs/`, `.cache/`, `.dedup/`, hidden files, locks, temporary files. manifest.json
goes up with anything shaped like a token replaced (`hf_***`), as the card.

The token comes from where huggingface_hub looks (HF_TOKEN, `hf auth login`); it is never printed, and every
message from the Hub is scrubbed of it before it is shown.
"""

from finephrase.publish.command import add_parser, publish  # noqa: F401
from finephrase.publish.selection import data_files, data_patterns, ignore_patterns  # noqa: F401
