"""Compact a finished run (or dedup output) into Hub-sized shards before publishing: what `finephrase compact`
does, as a file to edit. Run it from the repository root, or as a SLURM array (each task writes its own shards;
the last one to finish writes OUTPUT/manifest.json):

    python pipelines/compact.py
    sbatch --array=0-15 slurm/stage.sh pipelines/compact.py

Rerun (or resubmit) to continue after an interruption: committed shards are not written again. Then
`finephrase verify OUTPUT` and `finephrase publish OUTPUT --repo ORG/NAME` (docs/publishing.md).
"""

from finephrase.compact import compact_folder

RUN = "output/finephrase-dedup"  # a finished run or dedup output
OUTPUT = "output/finephrase-final"  # a new folder: <folder>/train-XXXXX-of-YYYYY.parquet and the run's manifest
TARGET_SIZE = "500MB"  # shard size on disk (the Hub takes files under 20 GB and fewer than 10,000 per folder)
TARGET_ROWS = None  # or rows per shard

if __name__ == "__main__":
    compact_folder(RUN, OUTPUT, target_size=TARGET_SIZE, target_rows=TARGET_ROWS)  # rank/tasks: the SLURM array's
