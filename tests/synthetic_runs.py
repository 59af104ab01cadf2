"""Run folders built without a model, for the tests of the stages that read one (dedup, decontaminate, score, mix,
folder kinds): the rows are given, everything else is written by the real code (the chunks and the ledger through
the real Ledger, the manifest by the run's own prepare_output and finalize_manifest from the fingerprint of a real
pipeline), with texts of random words so that only what is planted is similar."""

import random
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from conftest import write_parquet

from finephrase.pipeline.readers.resumable import resolve_inputs
from finephrase.pipeline.shape import connected, inspect_pipeline
from finephrase.prompts.library import load_prompts
from finephrase.run.config import RunConfig, build_pipeline
from finephrase.run.manifest import finalize_manifest, fingerprint, prepare_output, session_record
from finephrase.store.ledger import Ledger
from finephrase.store.schema import OUTPUT_SCHEMA

PROMPTS = {p.name: p.hash for p in load_prompts("faq,table")}
DOCS = 100  # source documents: 100 rows per prompt, 200 in all
CHUNK = 50  # documents per committed chunk: two files per prompt

WORDS = """time year people way day man thing woman life child world school state family student group country
problem hand part place case week company system program question work government number night point home water
room mother area money story fact month lot right study book eye job word business issue side kind head house
service friend father power hour game line end member law car city community name president team minute idea
kid body information back parent face others level office door health person art war history party result
change morning reason research girl guy moment air teacher force education foot boy age policy process music
market sense nation plan college interest death experience effect use class control care field development role
effort rate heart drug show leader light voice wife police mind price report decision son view relationship town
road arm difference value building action model season society tax director position player record paper space
ground form event official matter center couple site project activity star table need court oil situation cost
industry figure street image phone data picture practice piece land product doctor wall patient worker news test
movie north love support technology step baby computer type attention film tree source organization hair window
evidence population truth song energy""".split()


def sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(8, 16))]
    return " ".join(words).capitalize() + rng.choice([".", ".", ".", "?"])


def text(rng: random.Random, n_words: int = 220) -> str:
    """A FAQ-looking text of random words: questions and answers, about n_words words."""
    parts, count = [], 0
    while count < n_words:
        q, a = sentence(rng), " ".join(sentence(rng) for _ in range(3))
        parts.append(f"Question: {q}\nAnswer: {a}")
        count += len(q.split()) + len(a.split())
    return "\n\n".join(parts)


def change_words(rng: random.Random, t: str, n: int = 2) -> str:
    """A near duplicate: n words replaced, far apart (about 1% of the words)."""
    words = t.split(" ")
    step = len(words) // (n + 1)
    for k in range(1, n + 1):
        i = k * step
        words[i] = "banana" if words[i] != "banana" else "cherry"
    return " ".join(words)


def exact_variant(t: str, how: int) -> str:
    """An exact duplicate after case folding and whitespace collapsing."""
    return [t.upper(), "  " + t.replace(" ", "   ") + "\n", t.replace("\n", " \n\t")][how % 3]


def build_dedup_run(root: Path, docs: int = DOCS, chunk_size: int = CHUNK, copy_first_chunk: bool = False) -> dict:
    """A finished two-prompt run in root/run with planted duplicates. Returns what was planted:
    {"exact": {id: original id}, "near": {id: original id}, "cross": (faq id, table id)}. With copy_first_chunk,
    the only duplicates are faq's second chunk: exact copies of its first."""
    rng = random.Random(1234)
    source_ids = [f"<urn:uuid:{i:08d}-0000-0000-0000-000000000000>" for i in range(docs)]
    texts = {p: [text(rng) for _ in range(docs)] for p in PROMPTS}
    planted = {"exact": {}, "near": {}}
    if copy_first_chunk:
        for i in range(chunk_size, 2 * chunk_size):
            texts["faq"][i] = exact_variant(texts["faq"][i - chunk_size], i)
            planted["exact"][f"{source_ids[i]}/faq"] = f"{source_ids[i - chunk_size]}/faq"
    # the copies come after their originals (chunk 1), so the originals are the rows kept
    for p in PROMPTS if not copy_first_chunk else ():
        t = texts[p]
        for j, (copy, orig) in enumerate([(60, 3), (61, 10), (62, 10), (75, 55), (90, 20)]):  # 10: two copies
            t[copy] = exact_variant(t[orig], j)
            planted["exact"][f"{source_ids[copy]}/{p}"] = f"{source_ids[orig]}/{p}"
        for copy, orig in [(65, 30), (70, 40), (80, 51), (95, 5)]:
            t[copy] = change_words(rng, t[orig], n=2 + copy % 2)
            planted["near"][f"{source_ids[copy]}/{p}"] = f"{source_ids[orig]}/{p}"
    if not copy_first_chunk:
        texts["table"][85] = texts["faq"][15]  # same text under two prompts: a duplicate only with --scope run
        planted["cross"] = (f"{source_ids[15]}/faq", f"{source_ids[85]}/table")
    write_run(root, [f"source document {i}" for i in range(docs)], texts, chunk_size)
    return planted


def write_manifest(run: Path, src: Path, prompts=tuple(PROMPTS), tasks: int = 1) -> None:
    """A run's manifest through the real code, once its ledgers are written: the fingerprint of the pipeline
    `finephrase rephrase SRC --prompt PROMPTS --id-column id --seed 1 --tasks TASKS` stands for, written as a run
    writes it, then finalized from the ledgers (counts; finished when every task's ledger says so)."""
    cfg = RunConfig.for_backend("embedded", inputs=[str(src)], output=str(run), prompts=load_prompts(",".join(prompts)),
                                id_column="id", seed=1, tasks=tasks)
    shape = connected(inspect_pipeline(build_pipeline(cfg)))
    prepare_output(run, fingerprint(shape, tasks, resolve_inputs(cfg.inputs)), session_record(shape, 1, None, 0),
                   shape.rephrase.prompts)
    finalize_manifest(run, tasks)


def write_run(root: Path, source_texts: list[str], texts: dict[str, list[str]], chunk_size: int = CHUNK) -> Path:
    """A finished run in root/run: its input root/in/docs.parquet holds `source_texts`, prompt p's row i has text
    texts[p][i] (one per source document), committed in chunks of `chunk_size` through the real Ledger."""
    docs = len(source_texts)
    run = root / "run"
    source_ids = [f"<urn:uuid:{i:08d}-0000-0000-0000-000000000000>" for i in range(docs)]
    src = write_parquet(root / "in" / "docs.parquet",
                        [{"id": s, "text": source_texts[i], "url": f"https://example.org/{i}"}
                         for i, s in enumerate(source_ids)])

    def row(i: int, p: str) -> dict:
        return {"id": f"{source_ids[i]}/{p}", "source_id": source_ids[i], "prompt": p, "prompt_hash": PROMPTS[p],
                "text": texts[p][i], "model": "SmolLM2-135M-Instruct", "finish_reason": "stop",
                "input_tokens": 300 + i, "output_tokens": len(texts[p][i].split()), "input_truncated": i % 7 == 0,
                "reasoning": None, "url": f"https://example.org/{i}", "dump": "CC-MAIN-2024-10",
                "date": "2024-02-21T10:00:00Z", "file_path": None, "language": "en", "language_score": 0.93,
                "token_count": 500 + i, "score": 3.1, "int_score": 3,
                "metadata": orjson.dumps({"source": "fixture", "n": i}).decode() if i % 3 == 0 else None}

    ledger = Ledger(run, 0)
    for chunk, start in enumerate(range(0, docs, chunk_size)):
        ids = range(start, start + chunk_size)
        tables = {p: pa.Table.from_pylist([row(i, p) for i in ids], schema=OUTPUT_SCHEMA) for p in PROMPTS}
        ledger.commit(chunk, tables, {
            "docs": chunk_size, "rows": {p: chunk_size for p in PROMPTS}, "rejects": {}, "filtered": {},
            "input_tokens": sum(sum(t["input_tokens"].to_pylist()) for t in tables.values()),
            "output_tokens": sum(sum(t["output_tokens"].to_pylist()) for t in tables.values()),
            "pos": {"file_index": 0, "offset": start + chunk_size, "read": start + chunk_size}})
    ledger.mark_finished({"docs": docs})
    write_manifest(run, src)
    return run


# -- mix: several sources and a run of many files --

MIX_WORDS = ("the of and to in is that for it as was with be by on not he this are or his from at which but have an "
         "they you were her she there one all we can their has been if more when will would who so no data model "
         "token python list value function class module error return import loop string number table question "
         "answer Why How What photosynthesis équation naïve 3.14 42 x=y+1 (see above) {'a': 1}").split()


def mix_text(rng: random.Random, lo: int, hi: int) -> str:
    words = [rng.choice(MIX_WORDS) + ("." if rng.random() < 0.08 else "") for _ in range(rng.randint(lo, hi))]
    return " ".join(words) + ("\n\nQ: " + rng.choice(MIX_WORDS) + "?" if rng.random() < 0.3 else "")


def build_mix_run(root: Path, n_per_file: int, seed: int, prompts=("faq", "table"), files=3) -> dict:
    """A finephrase run folder: root/<prompt>/00000_CCCCCC.parquet with OUTPUT_SCHEMA rows, plus a reject and a
    temp file that must be ignored. Returns {id: text} per prompt."""
    rng = random.Random(seed)
    out = {}
    for p in prompts:
        out[p] = {}
        for f in range(files):
            rows = []
            for i in range(n_per_file):
                sid = f"<urn:{seed}-{f}-{i}>"
                rows.append({"id": f"{sid}/{p}", "source_id": sid, "prompt": p, "prompt_hash": "0123456789abcdef",
                             "text": mix_text(rng, 15, 350), "model": "test", "output_tokens": 1})
                out[p][rows[-1]["id"]] = rows[-1]["text"]
            d = root / p
            d.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.Table.from_pylist(rows, schema=OUTPUT_SCHEMA), d / f"00000_{f:06d}.parquet")
        (root / p / f".00000_{files:06d}.parquet.tmp").write_bytes(b"half a file")
    rej = root / "rejects" / prompts[0]
    rej.mkdir(parents=True)
    pq.write_table(pa.table({"source_id": ["r"], "text": ["rejected " * 50]}), rej / "00000_000000.parquet")
    return out


def build_mix_sources(root: Path, n: int, seed: int) -> dict:
    """A parquet source with ids and a jsonl source without (positional ids FILE:N), one null text in each."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    a = [{"id": f"a-{i}", "text": mix_text(rng, 5, 600), "int_score": i % 5} for i in range(n)]
    a[7]["text"] = None
    pq.write_table(pa.Table.from_pylist(a), root / "web.parquet", row_group_size=97)
    b = [{"text": mix_text(rng, 5, 400)} for _ in range(n // 2)]
    b[3]["text"] = None
    (root / "edu.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in b))
    return {"source:web": {r["id"]: r["text"] for r in a if r["text"]},
            "source:edu": {f"edu.jsonl:{i}": r["text"] for i, r in enumerate(b, 1) if r["text"]}}
