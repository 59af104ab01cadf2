"""The card's sections: each function returns the lines that go between template.md's fixed text (a section's
heading, prose and table header), joined, from the manifest, the stats and the compute."""

from __future__ import annotations

import re
from pathlib import Path

import orjson

from finephrase.card.data import RESERVED_CONFIGS
from finephrase.card.privacy import public_command, public_path
from finephrase.card.provenance import SAMPLE_DESCRIPTION, engine, model_revision_text
from finephrase.formatting import duration
from finephrase.quality.regenerate import prompt_yield
from finephrase.serving.truncation import truncation_text


def _n(v) -> str:
    return f"{v:,}"


def _fence(text: str) -> str:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    f = "`" * max(3, longest + 1)
    return f"{f}text\n{text.rstrip()}\n{f}"


def configs_phrase(confs: list[dict], per: dict) -> str:
    """The sentence of the card's introduction that says which configs there are (agreeing with the YAML)."""
    names = [c["config_name"] for c in confs]
    rows = [n for n in names if n in per]
    if rows:
        return f"one config per prompt with rows ({', '.join(f'`{n}`' for n in rows)}) plus `all`."
    extras = [f"`{n}`" for n in names]
    return ("no rows were published (every generation was rejected, filtered or removed), so there is no `all` "
            "config and no prompt config" + (f"; configs: {', '.join(extras)}." if extras else "."))


def _loading_example(confs: list[dict], repo_ref: str) -> list[str]:
    """The card's lines that show how to load it: a prompt's config and `all`, or, without rows, the first config
    there is (none at all: a sentence saying so)."""
    names = [c["config_name"] for c in confs]
    if not names:
        return ["Nothing to load: this folder holds no published files.", ""]
    first = next((n for n in names if n not in RESERVED_CONFIGS), names[0])
    lines = ["Load a config (split `train`):", "", "```python", "from datasets import load_dataset",
             f'{first} = load_dataset("{repo_ref}", "{first}", split="train")']
    if "all" in names:
        lines.append(f'everything = load_dataset("{repo_ref}", "all", split="train", streaming=True)  # without '
                     f'downloading all')
    lines += ["```", "", f'A local copy of the folder loads the same way: `load_dataset("path/to/folder", "{first}")`.',
              ""]
    return lines


def configs_section(confs: list[dict], stats: dict, prompts: list[str], total_rows: int, repo_ref: str,
                    removed_by: str = "dedup") -> str:
    """The table of configs, the prompts without rows, and how to load a config."""
    per = stats["prompts"]
    L: list[str] = []
    add = L.append
    if confs:
        add("| config | files | rows | what |")
        add("|---|---:|---:|---|")
    for c in confs:
        n = c["config_name"]
        if n == "all":
            files = sum(s["files"] for s in per.values())
            add(f"| `all` (default) | {_n(files)} | {_n(total_rows)} | every prompt's rows, one table |")
        elif n in per:
            add(f"| `{n}` | {_n(per[n]['files'])} | {_n(per[n]['rows'])} | rows of prompt `{n}` |")
        elif n == "rejects":
            add(f"| `rejects` | {_n(sum(s['reject_files'] for s in per.values()))} | "
                f"{_n(sum(sum(s['rejects'].values()) for s in per.values()))} | generations that failed, with "
                f"`reject_reason` (another schema) |")
        elif n == "filtered":
            add(f"| `filtered` | {_n(stats['filtered_files'])} | {_n(sum(stats['filtered'].values()))} | documents "
                f"refused by source selection: `source_id`, `filter_reason` |")
        elif n == "removed":
            add(f"| `removed` | {_n(sum(s['removed_files'] for s in per.values()))} | "
                f"{_n(sum(s['removed'] for s in per.values()))} | rows removed by {removed_by} |")
    empty = [p for p in prompts if not per[p]["files"]]
    if empty:
        add("")
        add(f"No rows (so no config) for: {', '.join(f'`{p}`' for p in empty)}.")
    add("")
    L.extend(_loading_example(confs, repo_ref))
    return "\n".join(L[:-1])  # the loading example ends with the blank line the template has


def _selection_text(sel: dict) -> str:
    sel_parts = [f"where {' and '.join(sel['where'])}" if sel.get("where") else "",
                 f"language in {', '.join(sel['languages'])}" if sel.get("languages") else "",
                 f"at least {sel['min_chars']:,} characters" if sel.get("min_chars") is not None else "",
                 f"at most {sel['max_chars']:,} characters" if sel.get("max_chars") is not None else "",
                 f"sample rate {sel['sample_rate']}" if sel.get("sample_rate") is not None else "",
                 f"token budget {sel['token_budget']:,}" if sel.get("token_budget") is not None else "",
                 f"filters {', '.join(sel['filters'])}" if sel.get("filters") else ""]
    sel_parts = [x for x in sel_parts if x]
    return "; ".join(sel_parts) if sel_parts else "none (every document)"


def source_section(root: Path, cfg: dict, srcs: list[dict], lic: dict, license: str | None) -> str:
    """Each input with its dataset and revision, the input files, columns, selection, and the license."""
    L: list[str] = []
    add = L.append
    for s in srcs:
        if s["hub_id"]:
            rev = s["revision"] or "not pinned (the branch head when the run read it)"
            how = " (given with --source-dataset)" if s.get("given") else ""
            add(f"- [`{s['hub_id']}`](https://huggingface.co/datasets/{s['hub_id']}){how}, revision: {rev}; input "
                f"`{public_path(s['input'], root)}`")
        elif s.get("sample"):
            add(f"- {SAMPLE_DESCRIPTION}; input `{public_path(s['input'], root)}`")
        else:
            add(f"- local input `{public_path(s['input'], root)}` (dataset and revision not recorded)")
    files = cfg.get("input_files") or {}
    if files:
        add(f"- input files: {files.get('count')} (sha256 of their names and sizes: `{files.get('sha256')}`)")
    add(f"- text column `{cfg.get('text_column')}`, id column `{cfg.get('id_column')}`"
        + (f", at most {cfg['limit']:,} documents per task" if cfg.get("limit", -1) not in (-1, None) else ""))
    add(f"- source selection: {_selection_text(cfg.get('selection') or {})}")
    lic_line = lic["license"] + (f" ({lic['license_name']}, {lic['license_link']})" if lic.get("license_name") else "")
    if license:
        add(f"- license of this dataset: {lic_line} (given with --license)")
    elif lic["license"] == "other" and not lic.get("license_name"):
        add("- license: not recorded for this source (`other`); the source's license applies to the rewrites: "
            "pass `--license` to `finephrase card` / `publish`")
    else:
        add(f"- license: {lic_line}, the source's license (the rewrites are derived from it)")
    return "\n".join(L)


def model_section(manifest: dict, cfg: dict, model: str, model_revision: str | None) -> str:
    """Model and revision, backend and engine, context length, sampling, constrained generation, software."""
    L: list[str] = []
    add = L.append
    hub_model = re.fullmatch(r"[\w.-]+/[\w.-]+", model) is not None and not model.endswith(".gguf")
    add("- model: " + (f"[`{model}`](https://huggingface.co/{model})" if hub_model else f"`{model}`")
        + f", revision: {model_revision_text(manifest, model_revision)}")
    add(f"- backend: `{cfg.get('backend')}`; engine: {engine(manifest)}")
    add(f"- context length: {_n(cfg['context_length']) if cfg.get('context_length') else 'not recorded'} tokens")
    sp = cfg.get("sampling") or {}
    add("- sampling: " + ", ".join(f"{k} {v if v is not None else 'unset (server default)'}" for k, v in sp.items()))
    if cfg.get("chat_template_kwargs"):
        add(f"- chat template arguments: `{orjson.dumps(cfg['chat_template_kwargs']).decode()}`")
    if cfg.get("constrain_format"):
        with_grammar = [p["name"] for p in manifest.get("prompts", []) if (p.get("check") or {}).get("grammar")]
        add("- constrained generation: on (each template's grammar sent with its requests"
            + (f": {', '.join(f'`{n}`' for n in with_grammar)}" if with_grammar else "") + ")")
    if regen := cfg.get("regenerate"):
        add(regeneration_line(regen, manifest.get("counts") or {}))
    sw = manifest.get("software") or {}
    if sw:
        add("- software at creation: " + ", ".join(f"{k} {v}" for k, v in sw.items()))
    return "\n".join(L)


def regeneration_line(regen: dict, counts: dict) -> str:
    """What regeneration was set to, and what it took: attempts per published row, attempts discarded."""
    line = (f"- regeneration: up to {regen['max_attempts']} generations per (document, prompt); a rejected one "
            f"(`{'`, `'.join(regen['reasons'])}`) asked again with a new seed, temperature +"
            f"{regen['temperature_step']} per attempt (at most {regen['max_temperature']})")
    per_row = [f"`{p}` {attempts:.2f}" for p in counts.get("rows") or {}
               if (attempts := prompt_yield(counts, p)[2]) is not None]
    if per_row:
        line += "; attempts per published row: " + ", ".join(per_row)
    if discarded := sum((counts.get("retries") or {}).values()):
        line += f"; {_n(discarded)} attempts discarded ({_n(counts.get('retry_tokens', 0))} tokens generated)"
    return line


def _prompt_block(p: str, prompt_hash: str, t: dict) -> str:
    """One prompt's heading, hash and description, its system and template texts and its request fields."""
    L: list[str] = []
    add = L.append
    add(f"### `{p}`")
    add("")
    add(f"hash `{prompt_hash}`" + (f", family {t['family']}" if t.get("family") else "")
        + (f", version {t['version']}" if t.get("version") is not None else "")
        + (f", extract tag `<{t['extract_tag']}>`" if t.get("extract_tag") else "")
        + (f": {t['description']}" if t.get("description") else ""))
    add("")
    if t.get("system"):
        add("System:")
        add("")
        add(_fence(t["system"]))
        add("")
    if t.get("template"):
        add("Template:")
        add("")
        add(_fence(t["template"]))
        add("")
    for server_kind, fields in (t.get("request") or {}).items():
        add(f"Sent with its requests to {server_kind}: " + ", ".join(f"`{k}` {v}" for k, v in fields.items()))
        add("")
    if not t:
        add("(the prompt's text is not in the manifest)")
        add("")
    return "\n".join(L[:-1])  # every part ends with a blank line: the last one is the template's


def prompts_section(manifest: dict, cfg: dict, prompts: list[str]) -> str:
    by_name = {p["name"]: p for p in manifest.get("prompts", [])}
    return "\n\n".join(_prompt_block(p, cfg["prompts"][p], by_name.get(p, {})) for p in prompts)


def counts_lines(root: Path, manifest: dict, stats: dict, ftotal: int) -> str:
    """Documents read, filtered by source selection, truncated to fit the context, and where the rejects and
    filtered documents were counted."""
    L: list[str] = []
    add = L.append
    counts = manifest.get("counts") or {}
    if counts.get("documents") is not None:
        add(f"- documents read: {_n(counts['documents'])} (bad and filtered records included)")
    add(f"- filtered by source selection: {_n(ftotal)}"
        + (" (" + ", ".join(f"{k} {_n(v)}" for k, v in stats["filtered"].items()) + ")" if ftotal else ""))
    if truncated := truncation_text(counts):  # runs made before truncation was counted have no such counts
        add(f"- truncated to fit the context: {truncated}")
    if stats["extras_from"] == "source":
        add(f"- rejects and filtered documents: counted from the files of the source run "
            f"`{public_path(stats['extras_root'], root)}` "
            f"(they are not in this folder)")
    elif stats["extras_from"] == "manifest":
        add("- rejects and filtered documents: from the manifest's counts (the source run's files are not here)")
    return "\n".join(L)


def removal_steps(manifest: dict) -> list[str]:
    """The steps whose removed rows the counts show, in order: [] for a run, ["dedup"], ["decontamination"] or
    ["dedup", "decontamination"] (the last one's rows are in removed/, an earlier one's only counted)."""
    return [k for k in ("dedup", "decontamination") if isinstance(manifest.get(k), dict)]


def _removed_cells(s: dict, steps: list[str]) -> list[int]:
    return [s["removed_before"], s["removed"]] if len(steps) == 2 else [s["removed"]] if steps else []


def counts_table(prompts: list[str], per: dict, ftotal: int, steps: list[str]) -> str:
    """Rows, rejects, filtered (and removed, per step) per prompt, adding up to the documents."""
    L: list[str] = []
    add = L.append
    head = "| prompt | rows | rejects | filtered |" + "".join(f" removed ({k}) |" for k in steps) + " documents |"
    add(head)
    add("|---|" + "---:|" * (head.count("|") - 2))
    for p in prompts:
        s = per[p]
        rej = sum(s["rejects"].values())
        cells = _removed_cells(s, steps)
        docs = s["rows"] + rej + ftotal + sum(cells)
        add(f"| `{p}` | {_n(s['rows'])} | {_n(rej)} | {_n(ftotal)} |" + "".join(f" {_n(c)} |" for c in cells)
            + f" {_n(docs)} |")
    return "\n".join(L)


def rejects_by_reason(prompts: list[str], per: dict) -> str:
    reasons = [(p, r, n) for p in prompts for r, n in per[p]["rejects"].items()]
    if not reasons:
        return "No rejects."
    L = ["Rejects by reason (see finephrase's docs/output.md, *Reject reasons*):", "", "| prompt | reason | rejects |",
         "|---|---|---:|"]
    for p, r, n in reasons:
        L.append(f"| `{p}` | `{r}` | {_n(n)} |")
    return "\n".join(L)


def format_compliance_rows(prompts: list[str], per: dict) -> str:
    """Per prompt: the share of generations that passed the gate, and the top reject reasons."""
    L: list[str] = []
    for p in prompts:
        s = per[p]
        passed = s["rows"] + s["removed"] + s["removed_before"]  # rows removed later had passed the gate too
        checked = passed + sum(s["rejects"].values())
        top = sorted(s["rejects"].items(), key=lambda kv: -kv[1])[:3]
        share = f"{passed / checked:.1%}" if checked else "-"
        L.append(f"| `{p}` | {share} | " + (", ".join(f"`{r}` {_n(n)}" for r, n in top) or "none") + " |")
    return "\n".join(L)


def token_fields(manifest: dict, prompts: list[str], per: dict) -> dict:
    """The Tokens table: a row per prompt and the totals (input, output, generated)."""
    counts = manifest.get("counts") or {}
    L: list[str] = []
    known = all(s["reject_output_tokens"] is not None for s in per.values())
    for p in prompts:
        s = per[p]
        gen = _n(s["output_tokens"] + s["reject_output_tokens"]) if known else "not recorded"
        L.append(f"| `{p}` | {_n(s['input_tokens'])} | {_n(s['output_tokens'])} | {gen} |")
    tin = sum(s["input_tokens"] for s in per.values())
    tout = sum(s["output_tokens"] for s in per.values())
    if known:
        tgen = _n(tout + sum(s["reject_output_tokens"] for s in per.values()) + counts.get("retry_tokens", 0))
    else:  # a dedup output whose source run is gone: the run's total from the manifest (before dedup)
        g = counts.get("generated_tokens")
        tgen = f"{_n(g)} (the run's)" if g is not None else "not recorded"
    return {"token_rows": "\n".join(L), "total_input_tokens": _n(tin), "total_output_tokens": _n(tout),
            "total_generated_tokens": tgen}


def compute_section(manifest: dict, cfg: dict, compute: dict | None) -> str:
    """Tasks and sessions, task and wall time, GPU-hours."""
    L: list[str] = []
    add = L.append
    add(f"- tasks: {cfg.get('tasks')}; sessions (starts and resumptions): {len(manifest.get('sessions', []))}")
    if compute is None:
        add("- task time and GPU-hours: not recorded (no progress snapshots)")
    else:
        add(f"- task time: {duration(compute['task_s'])} (sum over tasks), wall time: {duration(compute['wall_s'])}")
        gpus = [g for g in compute["gpus_per_task"] if g]
        if compute["gpu_hours"] > 0:
            add(f"- GPU-hours: {compute['gpu_hours']:.2f} ({' or '.join(map(str, gpus))} GPU(s) per task x task "
                f"time, as `finephrase status` computes it)")
        elif cfg.get("backend") == "embedded":
            add("- GPU-hours: none (the embedded backend runs on the CPU)")
        else:
            add("- GPU-hours: not known (the server's GPUs were not counted: gpus_per_task 0)")
    return "\n".join(L)


def dedup_section(root: Path, dedup: dict | None, prompts: list[str], per: dict) -> str:
    """The whole `## Dedup` section with the blank line after it (empty for a run that is not a dedup output):
    source run, scope, parameters, rows in / kept / removed per prompt."""
    if not dedup:
        return ""
    L = ["## Dedup", ""]
    add = L.append
    source = public_path(dedup.get("source") or "not recorded", root)
    add(f"- source run: `{source}`; scope: {dedup.get('scope')}")
    if dedup.get("params"):
        add("- parameters: " + ", ".join(f"{k} {v}" for k, v in dedup["params"].items()))
    add("")
    add("| prompt | rows in | kept | removed exact | removed near |")
    add("|---|---:|---:|---:|---:|")
    for p in prompts:
        r = (dedup.get("removed") or {}).get(p) or {}
        r = r if isinstance(r, dict) else {"exact": r}
        kept = (dedup.get("kept") or {}).get(p, per[p]["rows"])
        rows_in = (dedup.get("input") or {}).get(p, kept + sum(v for v in r.values() if isinstance(v, int)))
        add(f"| `{p}` | {_n(rows_in)} | {_n(kept)} | {_n(r.get('exact', 0))} | {_n(r.get('near', 0))} |")
    return "\n".join(L) + "\n\n"


def extra_files(stats: dict, per: dict, include_extras: bool, steps: list[str]) -> str:
    """The file list's lines for rejects/, filtered/ and removed/ (or that they were left out), each with its
    newline."""
    L: list[str] = []
    add = L.append
    if include_extras:
        if any(s["reject_files"] for s in per.values()):
            add("- `rejects/<prompt>/`: one row per failed (document, prompt), `reject_reason` and the raw "
                "generation")
        if stats["filtered_files"]:
            add("- `filtered/`: documents refused by source selection: `source_id`, `filter_reason`")
        if any(s["removed_files"] for s in per.values()):
            add("- `removed/<prompt>/`: rows removed by " + (
                "decontamination, with `decontam_reason` (`contaminated:<benchmark>`), `matched_ngram`, "
                "`benchmark_item` and `source_overlap`" if steps[-1:] == ["decontamination"] else
                "dedup, with `dedup_reason` and `duplicate_of`"))
    else:
        add("- rejects, filtered documents" + (f" and {steps[-1]} removals" if steps else "")
            + " were left out of this upload (`--no-rejects`); the counts above include them")
    return "".join(line + "\n" for line in L)


def commands(manifest: dict) -> str:
    """The recorded command line of every session, without local paths, each with its newline."""
    return "".join(public_command(s.get("command", "")) + "\n" for s in manifest.get("sessions", []))
