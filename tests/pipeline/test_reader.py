"""The resumable reader: bad records as rejects, positional ids, seeking on resume, limits, sharding, refusals."""

import gzip
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from finephrase.errors import UsageError
from finephrase.pipeline.readers.resumable import ResumableReader, resolve_inputs

# (raw line, expected id or None for positional, expected reject reason or None, expected text)
LINES = [
    (b'{"id": "a", "text": "First good document.", "url": "https://a"}', "a", None, "First good document."),
    (b'{"text": "Second good document, no id."}', None, None, "Second good document, no id."),
    (b'{"id": "x", "text": "broken', None, "malformed_json", ""),
    (b'{"id": "m", "body": "no text field"}', "m", "missing_text", ""),
    (b'{"text": null}', None, "text_null", ""),
    (b'{"text": 123}', None, "text_not_string", ""),
    (b'{"text": "   \\n\\t "}', None, "text_empty", ""),
    (b'{"text": "bad \xff\xfe bytes"}', None, "invalid_utf8", ""),
    (b"", None, None, None),  # blank line: not a record
    (b'{"id": "", "text": "Empty id means positional."}', None, None, "Empty id means positional."),
    (b'[1, 2, 3]', None, "not_an_object", ""),
    (b'   ', None, None, None),  # whitespace-only line: not a record
    (b'{"id": 42, "text": "Numeric id.", "score": 2.5}', "42", None, "Numeric id."),
    (b'{"text": "Last one."}', None, None, "Last one."),
]
RECORDS = [line for line in LINES if line[3] is not None]


def _jsonl_bytes() -> bytes:
    return b"\n".join(raw for raw, *_ in LINES) + b"\n"


def _expected_ids(relpath: str) -> list[str]:
    out = []
    for n, (_, id_, _, _) in enumerate(RECORDS, start=1):
        out.append(id_ if id_ is not None else f"{relpath}:{n}")
    return out


@pytest.fixture
def jsonl(tmp_path) -> Path:
    p = tmp_path / "in.jsonl"
    p.write_bytes(_jsonl_bytes())
    return p


@pytest.fixture
def jsonl_gz(tmp_path) -> Path:
    p = tmp_path / "in.jsonl.gz"
    with gzip.open(p, "wb") as f:
        f.write(_jsonl_bytes())
    return p


def _parquet_rows(n: int = 11) -> list[dict]:
    rows = []
    for i in range(n):
        rows.append({"id": None if i % 3 == 1 else f"p{i}", "text": f"Parquet document number {i}.",
                     "int_score": i % 5})
    rows[4]["text"] = None
    rows[7]["text"] = "  "
    return rows


@pytest.fixture
def parquet(tmp_path) -> Path:
    p = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist(_parquet_rows()), p, row_group_size=3)
    assert pq.ParquetFile(p).metadata.num_row_groups == 4
    return p


def _docs(reader, **kw):
    return list(reader.iter_documents(**kw))


# -- records -> documents ----------------------------------------------------------------------------------------


def test_jsonl_every_record_accounted_for(jsonl):
    docs = _docs(ResumableReader(str(jsonl)))
    assert len(docs) == len(RECORDS) == 12
    assert [d.id for d in docs] == _expected_ids("in.jsonl")
    for d, (_, _, reject, text) in zip(docs, RECORDS):
        assert d.metadata.get("_fp_reject") == reject, d.id
        assert d.text == text
    # the rest of the record travels as metadata; the text and id columns do not
    assert docs[0].metadata["url"] == "https://a"
    assert "text" not in docs[0].metadata and "id" not in docs[0].metadata
    assert docs[3].metadata["body"] == "no text field"
    assert docs[-2].metadata["score"] == 2.5
    # positions: monotonically increasing byte offsets, a running count of records read
    reads = [d.metadata["_fp_pos"]["read"] for d in docs]
    assert reads == list(range(1, 13))
    offsets = [d.metadata["_fp_pos"]["offset"] for d in docs]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
    assert offsets[-1] == jsonl.stat().st_size
    fracs = [d.metadata["_fp_frac"] for d in docs]
    assert all(0 < f <= 1 for f in fracs) and fracs[-1] == 1.0


def test_reject_reasons(jsonl):
    docs = _docs(ResumableReader(str(jsonl)))
    reasons = [d.metadata.get("_fp_reject") for d in docs]
    for reason in ("malformed_json", "missing_text", "text_null", "text_not_string", "text_empty", "invalid_utf8",
                   "not_an_object"):
        assert reasons.count(reason) == 1, reason


def test_surrogates_are_invalid_utf8(tmp_path):
    p = tmp_path / "s.jsonl"
    p.write_bytes(b'{"text": "lone \\ud800 escape"}\n{"text": "encoded \xed\xa0\x80 surrogate"}\n{"text": "fine"}\n')
    docs = _docs(ResumableReader(str(p)))
    assert [d.metadata.get("_fp_reject") for d in docs] == ["invalid_utf8", "invalid_utf8", None]
    assert docs[2].text == "fine"


def test_run_passes_through_and_counts(jsonl):
    reader = ResumableReader(str(jsonl))
    docs = list(reader.run())
    assert len(docs) == 12
    assert reader.stats["documents"].total == 12
    assert reader.stats["bad_text_null"].total == 1


def test_custom_text_and_id_columns(tmp_path):
    p = tmp_path / "c.jsonl"
    p.write_bytes(b'{"key": "k1", "content": "hello there", "text": "not this"}\n')
    (d,) = _docs(ResumableReader(str(p), text_column="content", id_column="key"))
    assert d.id == "k1" and d.text == "hello there"
    assert d.metadata["text"] == "not this"


def test_parquet_documents(parquet):
    docs = _docs(ResumableReader(str(parquet)))
    rows = _parquet_rows()
    assert len(docs) == len(rows)
    # parquet positional ids count rows from 1, like jsonl records
    assert [d.id for d in docs] == [r["id"] or f"in.parquet:{i}" for i, r in enumerate(rows, start=1)]
    assert docs[4].metadata["_fp_reject"] == "text_null"
    assert docs[7].metadata["_fp_reject"] == "text_empty"
    assert docs[0].text == "Parquet document number 0." and "_fp_reject" not in docs[0].metadata
    assert docs[3].metadata["int_score"] == 3
    assert [d.metadata["_fp_pos"]["offset"] for d in docs] == list(range(1, 12))


# -- resume ------------------------------------------------------------------------------------------------------


def _check_resume(path: Path, after: int):
    reader = ResumableReader(str(path))
    docs = _docs(reader)
    pos = docs[after - 1].metadata["_fp_pos"]
    rest = _docs(ResumableReader(str(path)), start=pos)
    assert [d.id for d in rest] == [d.id for d in docs[after:]]
    assert [d.text for d in rest] == [d.text for d in docs[after:]]
    assert [d.metadata.get("_fp_reject") for d in rest] == [d.metadata.get("_fp_reject") for d in docs[after:]]
    assert [d.metadata["_fp_pos"] for d in rest] == [d.metadata["_fp_pos"] for d in docs[after:]]
    return docs, rest


@pytest.mark.parametrize("fixture", ["jsonl", "jsonl_gz", "parquet"])
def test_resume_after_third_document(fixture, request):
    path = request.getfixturevalue(fixture)
    docs, rest = _check_resume(path, 3)
    assert len(rest) == len(docs) - 3 > 0


@pytest.mark.parametrize("fixture", ["jsonl", "jsonl_gz", "parquet"])
@pytest.mark.parametrize("after", [1, 5, 8])
def test_resume_at_other_positions(fixture, after, request):
    _check_resume(request.getfixturevalue(fixture), after)


@pytest.mark.parametrize("fixture", ["jsonl", "parquet"])
def test_resume_after_last_document_yields_nothing(fixture, request):
    path = request.getfixturevalue(fixture)
    docs = _docs(ResumableReader(str(path)))
    assert _docs(ResumableReader(str(path)), start=docs[-1].metadata["_fp_pos"]) == []


def test_resume_across_files(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    for name in ("a", "b", "c"):
        (d / f"{name}.jsonl").write_bytes(b"".join(orjson.dumps({"text": f"{name} {i}"}) + b"\n" for i in range(3)))
    docs = _docs(ResumableReader(str(d)))
    assert [x.id for x in docs] == [f"{n}.jsonl:{i}" for n in "abc" for i in (1, 2, 3)]
    for k in (2, 3, 4, 8):
        rest = _docs(ResumableReader(str(d)), start=docs[k].metadata["_fp_pos"])
        assert [x.id for x in rest] == [x.id for x in docs[k + 1:]]


# -- limit -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["jsonl", "parquet"])
def test_limit(fixture, request):
    path = request.getfixturevalue(fixture)
    all_docs = _docs(ResumableReader(str(path)))
    docs = _docs(ResumableReader(str(path), limit=4))
    assert [d.id for d in docs] == [d.id for d in all_docs[:4]]
    assert docs[-1].metadata["_fp_frac"] == 1.0
    assert _docs(ResumableReader(str(path), limit=0)) == []


@pytest.mark.parametrize("fixture", ["jsonl", "parquet"])
def test_limit_across_resume(fixture, request):
    path = request.getfixturevalue(fixture)
    all_docs = _docs(ResumableReader(str(path)))
    pos = all_docs[1].metadata["_fp_pos"]
    assert pos["read"] == 2
    rest = _docs(ResumableReader(str(path), limit=4), start=pos)
    assert [d.id for d in rest] == [d.id for d in all_docs[2:4]]


# -- inputs and sharding -----------------------------------------------------------------------------------------


def test_sharding_over_tasks(tmp_path):
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    for name in ("f0.jsonl", "f1.jsonl", "sub/f2.jsonl"):
        (d / name).write_bytes(orjson.dumps({"text": f"from {name}"}) + b"\n")
    (d / "README.md").write_text("not an input")
    reader = ResumableReader(str(d))
    assert [f.relpath for f in reader.files] == ["f0.jsonl", "f1.jsonl", "sub/f2.jsonl"]
    assert [f.relpath for f in reader.shard(0, 2)] == ["f0.jsonl", "sub/f2.jsonl"]
    assert [f.relpath for f in reader.shard(1, 2)] == ["f1.jsonl"]
    assert [x.text for x in _docs(reader, rank=0, world_size=2)] == ["from f0.jsonl", "from sub/f2.jsonl"]
    assert [x.text for x in _docs(reader, rank=1, world_size=2)] == ["from f1.jsonl"]
    assert _docs(reader, rank=3, world_size=4) == []


def test_resolve_inputs_glob_and_dedup(tmp_path):
    for name in ("a.jsonl", "b.parquet", "c.txt"):
        (tmp_path / name).write_bytes(b"")
    files = resolve_inputs([str(tmp_path / "*"), str(tmp_path / "a.jsonl")])
    assert [f.relpath for f in files] == ["a.jsonl", "b.parquet"]
    assert [f.kind for f in files] == ["jsonl", "parquet"]


def test_nonexistent_path(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        resolve_inputs([str(tmp_path / "missing.jsonl")])
    with pytest.raises(UsageError, match="does not exist"):
        _docs(ResumableReader(str(tmp_path / "missing_dir")))


def test_folder_without_supported_files(tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    (d / "notes.txt").write_text("hello")
    (d / "data.csv").write_text("text\nhello\n")
    with pytest.raises(UsageError):
        resolve_inputs([str(d)])


def test_file_with_unsupported_extension(tmp_path):
    p = tmp_path / "data.csv"
    p.write_text("text\nhello\n")
    with pytest.raises(UsageError):
        resolve_inputs([str(p)])


def test_parquet_without_text_column(tmp_path):
    p = tmp_path / "notext.parquet"
    pq.write_table(pa.table({"id": ["a"], "content": ["hello"]}), p)
    with pytest.raises(UsageError) as e:
        _docs(ResumableReader(str(p)))
    assert "--text-column" in str(e.value)
    assert "content" in str(e.value)  # lists the columns there are
    (d,) = _docs(ResumableReader(str(p), text_column="content"))
    assert d.text == "hello" and d.id == "a"


def test_corrupt_gzip(tmp_path):
    p = tmp_path / "bad.jsonl.gz"
    data = gzip.compress(b"".join(orjson.dumps({"text": f"doc {i} " * 20}) + b"\n" for i in range(200)))
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(UsageError, match="corrupt"):
        _docs(ResumableReader(str(p)))


def test_positional_ids_unique_across_same_named_inputs(tmp_path):
    for d in ("d1", "d2"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "train.jsonl").write_bytes(b'{"text": "hello"}\n')
    reader = ResumableReader([str(tmp_path / "d1" / "train.jsonl"), str(tmp_path / "d2" / "train.jsonl")])
    ids = [d.id for d in _docs(reader)]
    assert len(ids) == 2
    assert len(set(ids)) == 2


def test_few_large_files_are_sharded_by_row_group(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"id": f"r{i}", "text": f"document {i}"} for i in range(12)]
    path = tmp_path / "big.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=2)  # 6 row groups
    reader = ResumableReader(str(path))
    shards = [reader.shard(rank, 3) for rank in range(3)]
    assert [s[0].row_groups for s in shards] == [(0, 3), (1, 4), (2, 5)]
    assert [s[0].rows for s in shards] == [4, 4, 4]
    seen = []
    for rank in range(3):
        docs = list(reader.iter_documents(rank, 3))
        assert len(docs) == 4  # balanced
        seen += [d.id for d in docs]
        # resume in the middle of a task's second row group
        rest = list(reader.iter_documents(rank, 3, start=docs[2].metadata["_fp_pos"]))
        assert [d.id for d in rest] == [d.id for d in docs[3:]]
    assert sorted(seen) == sorted(r["id"] for r in rows)  # every row exactly once over the tasks
    # one task: the whole file, as before
    assert [s.row_groups for s in reader.shard(0, 1)] == [None]


# -- resuming around committed ranges (chunks commit in any order) ------------------------------------------------


@pytest.mark.parametrize("fixture", ["jsonl", "jsonl_gz", "parquet"])
def test_resume_reads_only_the_uncommitted_ranges(fixture, request, tmp_path):
    from finephrase.store.ledger import Ledger

    path = request.getfixturevalue(fixture)
    docs = _docs(ResumableReader(str(path)))
    n = len(docs)
    assert n >= 10
    pos = [d.metadata["_fp_pos"] for d in docs]  # pos[i]: the position after document i + 1
    out = tmp_path / "run"
    led = Ledger(out, rank=0)
    # committed, out of order: documents 3-4, then 7-8; documents 1-2, 5-6 and 9.. are not
    for chunk, (first, last) in enumerate([(3, 4), (7, 8)]):
        led.commit(chunk, {}, {"first": first, "pos": pos[last - 1], "docs": last - first + 1})
    reader = ResumableReader(str(path), resume_dir=str(out))
    got = list(reader.run(rank=0, world_size=1))
    want = [i for i in range(1, n + 1) if i not in (3, 4, 7, 8)]
    assert [d.metadata["_fp_pos"]["read"] for d in got] == want
    assert [d.id for d in got] == [docs[i - 1].id for i in want]
    assert [d.metadata["_fp_pos"] for d in got] == [pos[i - 1] for i in want]
    # it sought to the start, past 3-4 (to the position after document 4) and past 7-8: never re-reading them
    assert reader.seeks == [None, pos[3], pos[7]]
