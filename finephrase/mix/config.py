"""What a mix is asked for: MixConfig and its checks, and the names and defaults the other modules share."""

from __future__ import annotations

from dataclasses import dataclass

from finephrase.errors import UsageError
from finephrase.store.layout import TRAIN

DEFAULT_TOKENIZER = "smollm2-135m"
TOLERANCE = 0.01  # achieved shares must be within 1 percentage point of the request
DEFAULT_SHARD_ROWS = 100_000
MIX_FILE = "mix.json"
TRAIN_DIR = TRAIN
TMP_DIR = ".mix-tmp"
DEFAULT_BUCKET_BYTES = 64 << 20  # shuffle bucket (and write buffer) size: bounds the memory


@dataclass
class MixConfig:
    synthetic: list[str]  # run folders or prompt folders; NAME=PATH names one
    sources: list[str]  # files, folders, globs, hf:// paths; NAME=PATH names one
    output: str
    synthetic_share: float = 0.5
    synthetic_weights: list[float] | None = None  # relative, one per synthetic input (default: their tokens)
    source_weights: list[float] | None = None
    tokenizer: str = DEFAULT_TOKENIZER
    seed: int = 0
    max_tokens: int | None = None
    allow_repeats: bool = False
    allow_unfinished: bool = False  # mix the committed rows of a run that has not finished
    shard_rows: int = DEFAULT_SHARD_ROWS
    text_column: str = "text"  # of the source inputs (synthetic rows: `text`)
    id_column: str = "id"
    workers: int = 0  # tokenizer threads (0: min(8, CPUs))
    bucket_bytes: int = DEFAULT_BUCKET_BYTES  # rows shuffled in memory at a time (and the scatter buffer)
    rank: int | None = None  # this task of `tasks` (None: SLURM_ARRAY_TASK_ID, or 0)
    tasks: int | None = None  # tasks of a SLURM array sharing the mix (None: the array's size, or 1)

    def check(self):
        if not self.synthetic:
            raise UsageError("give at least one --synthetic input (a finephrase run folder)")
        if not self.sources:
            raise UsageError("give at least one --source input (parquet/jsonl files, a folder, a glob, hf://)")
        s = self.synthetic_share
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not 0 < s < 1:
            raise UsageError(f"synthetic share must be a number strictly between 0 and 1, got {s}")
        for label, weights, n in (("synthetic", self.synthetic_weights, len(self.synthetic)),
                                  ("source", self.source_weights, len(self.sources))):
            if weights is None:
                continue
            if len(weights) != n:
                raise UsageError(f"--{label}-weights has {len(weights)} values for {n} {label} inputs")
            if any(not (isinstance(w, (int, float)) and w > 0 and w != float("inf")) for w in weights):
                raise UsageError(f"--{label}-weights must be positive numbers, got {weights}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise UsageError(f"--max-tokens must be at least 1, got {self.max_tokens}")
        if self.shard_rows < 1:
            raise UsageError(f"--shard-rows must be at least 1, got {self.shard_rows}")
        if self.bucket_bytes < 1:
            raise UsageError(f"--bucket-size must be at least 1 byte, got {self.bucket_bytes}")
        if self.seed < 0:
            raise UsageError(f"--seed must be >= 0, got {self.seed}")
