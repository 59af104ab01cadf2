"""The card's YAML front matter, what the Hub and `datasets` read: one config per prompt with rows, `all` (the
default), `rejects`, `filtered` and `removed` when those files exist and are included; license, language, tags,
size category, source datasets."""

from __future__ import annotations

import re


def size_category(n: int) -> str:
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
              (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"),
              (10_000_000_000, "1B<n<10B"), (100_000_000_000, "10B<n<100B"), (1_000_000_000_000, "100B<n<1T")]
    for b, label in bounds:
        if n < b:
            return label
    return "n>1T"


def configs(stats: dict, include_extras: bool = True) -> list[dict]:
    """The `configs:` of the YAML: `all` (default) and one per prompt with rows; rejects / filtered / removed when
    they exist and are included. A glob that matches nothing would make its config fail to load, so a prompt
    without rows gets no config; a folder that holds empty files (an older run's) lists its other files instead
    of a glob."""
    def paths(rels: list[str]) -> list[str]:
        out = []
        for rel in rels:
            spec = stats["data_paths"][rel]
            out += [spec] if isinstance(spec, str) else spec
        return out

    def config(name: str, rels: list[str], one_folder: bool = False, **extra) -> dict:
        spec = paths(rels)
        path = spec[0] if one_folder and len(spec) == 1 else spec  # a prompt's own config: the plain glob
        return {"config_name": name, **extra, "data_files": [{"split": "train", "path": path}]}

    with_rows = [p for p, s in stats["prompts"].items() if s["files"]]
    out = []
    if with_rows:
        out.append(config("all", with_rows, default=True))
    for p in with_rows:
        out.append(config(p, [p], one_folder=True))
    if include_extras:
        rej = [p for p, s in stats["prompts"].items() if s["reject_files"]]
        if rej:
            out.append(config("rejects", [f"rejects/{p}" for p in rej]))
        if stats["filtered_files"]:
            out.append(config("filtered", ["filtered"], one_folder=True))
        rem = [p for p, s in stats["prompts"].items() if s["removed_files"]]
        if rem:
            out.append(config("removed", [f"removed/{p}" for p in rem]))
    return out


def front_matter(name: str, lic: dict, stats: dict, prompts: list[str], total_rows: int, hub_ids: list[str],
                 confs: list[dict]) -> dict:
    """The front matter's fields, in the card's order."""
    meta: dict = {"pretty_name": name, **lic}
    langs = [lang for lang in stats["languages"] if re.fullmatch(r"[a-z]{2,3}", lang)]
    if langs:
        meta["language"] = langs
    meta["task_categories"] = ["text-generation"]
    meta["tags"] = ["synthetic", "rephrasing", "finephrase", "pretraining", *prompts]
    meta["size_categories"] = [size_category(total_rows)]
    if hub_ids:
        meta["source_datasets"] = hub_ids
    if confs:  # none at all: no `configs:` rather than an empty list
        meta["configs"] = confs
    return meta
