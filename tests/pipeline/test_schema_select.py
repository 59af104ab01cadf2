"""Passthrough columns of the output schema, and source selection (filters, sampling, token budget)."""

import orjson
import pyarrow as pa
import pytest
from datatrove.data import Document
from datatrove.pipeline.filters.base_filter import get_filter_result

from finephrase.errors import UsageError
from finephrase.pipeline.filters.select import (
    Select,
    TokenBudget,
    doc_tokens,
    language_is,
    length_between,
    sample,
    where,
)
from finephrase.store.schema import OUTPUT_SCHEMA, PASSTHROUGH, REJECT_SCHEMA, passthrough

# -- passthrough -------------------------------------------------------------------------------------------------

FIXED = {"id": "out-1", "source_id": "src-1", "prompt": "faq", "prompt_hash": "0123456789abcdef", "text": "Q: a?"}


def test_passthrough_keeps_fineweb_columns_with_coerced_types():
    meta = {
        "url": "https://example.org/a",
        "dump": 2024,  # -> "2024"
        "date": "2024-01-01",
        "file_path": "s3://bucket/file.warc.gz",
        "language": "en",
        "language_score": 1,  # -> 1.0
        "token_count": 512.0,  # integral float -> 512
        "score": "3.25",  # numeric string -> 3.25
        "int_score": 3,
    }
    out = passthrough(meta)
    assert out == {
        "url": "https://example.org/a",
        "dump": "2024",
        "date": "2024-01-01",
        "file_path": "s3://bucket/file.warc.gz",
        "language": "en",
        "language_score": 1.0,
        "token_count": 512,
        "score": 3.25,
        "int_score": 3,
        "metadata": None,
    }
    assert type(out["token_count"]) is int and type(out["language_score"]) is float


def test_passthrough_moves_unknown_and_wrong_typed_values_to_metadata():
    meta = {
        "url": "u",
        "int_score": "high",
        "token_count": 12.5,
        "score": True,
        "language_score": None,
        "source": "crawl-7",
        "tags": ["a", "b"],
        "_fp_pos": {"file_index": 0, "offset": 10},
        "_fp_reject": "missing_text",
        "_fp_frac": 0.5,
    }
    out = passthrough(meta)
    assert out["url"] == "u"
    assert out["int_score"] is None
    assert out["token_count"] is None
    assert out["score"] is None
    assert out["language_score"] is None
    assert "date" not in out  # absent columns are left out (null when written)
    extra = orjson.loads(out["metadata"])
    assert extra == {"int_score": "high", "token_count": 12.5, "score": True, "source": "crawl-7", "tags": ["a", "b"]}
    assert not any(k.startswith("_fp_") for k in extra)


def test_passthrough_only_internal_keys_gives_null_metadata():
    out = passthrough({"_fp_pos": {"offset": 1}, "_fp_read": 3})
    assert out == {"metadata": None}


def test_passthrough_rows_load_with_output_schema():
    metas = [
        {"url": "u1", "int_score": "high", "token_count": 7, "foo": {"bar": 1}, "_fp_read": 1},
        {"language": "en", "language_score": 0.97, "score": 2, "dump": "CC-MAIN"},
        {},
    ]
    rows = [{**FIXED, "id": f"out-{i}", **passthrough(m)} for i, m in enumerate(metas)]
    table = pa.Table.from_pylist(rows, schema=OUTPUT_SCHEMA)
    assert table.num_rows == 3
    assert table.schema == OUTPUT_SCHEMA
    assert table["int_score"].to_pylist() == [None, None, None]
    assert table["token_count"].to_pylist() == [7, None, None]
    assert table["score"].to_pylist() == [None, 2.0, None]
    assert orjson.loads(table["metadata"][0].as_py()) == {"int_score": "high", "foo": {"bar": 1}}
    assert table["metadata"][2].as_py() is None

    reject = {"source_id": "s", "prompt": "faq", "reject_reason": "empty", **passthrough(metas[0])}
    assert pa.Table.from_pylist([reject], schema=REJECT_SCHEMA).num_rows == 1


def test_passthrough_names_match_schema():
    names = [f.name for f in PASSTHROUGH]
    assert names[-1] == "metadata"
    assert set(passthrough({n: None for n in names[:-1]})) == set(names)


# -- filters -----------------------------------------------------------------------------------------------------


def doc(text="some text here", id="d", **meta):
    return Document(text=text, id=id, metadata=dict(meta))


def keeps(f, d) -> bool:
    return get_filter_result(f.filter(d))[0]


def test_where_numeric():
    f = where("int_score >= 4")
    assert keeps(f, doc(int_score=4))
    assert keeps(f, doc(int_score=5))
    assert not keeps(f, doc(int_score=3))
    assert not keeps(f, doc())  # missing column
    assert not keeps(f, doc(int_score=None))
    keep, reason = get_filter_result(f.filter(doc(int_score=1)))
    assert not keep and reason and "int_score" in reason


@pytest.mark.parametrize(
    "cond,value,expected",
    [
        ("score > 2.5", 2.6, True),
        ("score > 2.5", 2.5, False),
        ("score < 2.5", 2.4, True),
        ("score <= 2.5", 2.5, True),
        ("language == en", "en", True),
        ("language = en", "fr", False),
        ("language != en", "fr", True),
        ("language == 'en'", "en", True),
        ('dump == "CC-MAIN-2024"', "CC-MAIN-2024", True),
    ],
)
def test_where_operators(cond, value, expected):
    column = cond.split()[0]
    assert keeps(where(cond), doc(**{column: value})) is expected


@pytest.mark.parametrize("bad", ["int_score", "int_score 4", ">= 4", "4 >= int_score", "", "int_score >="])
def test_where_bad_syntax(bad):
    with pytest.raises(UsageError):
        where(bad)


def test_language_is():
    f = language_is("en", "fr")
    assert keeps(f, doc(language="en"))
    assert keeps(f, doc(language="fr"))
    assert not keeps(f, doc(language="de"))
    assert not keeps(f, doc())
    assert keeps(language_is("de", column="lang"), doc(lang="de"))


def test_length_between():
    f = length_between(5, 10)
    assert not keeps(f, doc(text="abcd"))
    assert keeps(f, doc(text="abcde"))
    assert keeps(f, doc(text="abcdefghij"))
    assert not keeps(f, doc(text="abcdefghijk"))
    assert keeps(length_between(min_chars=3), doc(text="x" * 100_000))
    assert not keeps(length_between(max_chars=3), doc(text="abcd"))


def _kept_ids(f, ids):
    return {i for i in ids if keeps(f, doc(id=i))}


def test_sample_rate_and_stability():
    ids = [f"doc-{i}" for i in range(2000)]
    a = _kept_ids(sample(0.3, seed=1), ids)
    assert 0.25 <= len(a) / len(ids) <= 0.35
    assert _kept_ids(sample(0.3, seed=1), ids) == a  # same seed, same choice
    b = _kept_ids(sample(0.3, seed=2), ids)
    assert 0.25 <= len(b) / len(ids) <= 0.35
    assert b != a
    # order-independent: the choice depends on the id only
    assert _kept_ids(sample(0.3, seed=1), list(reversed(ids))) == a
    assert len(_kept_ids(sample(1.0), ids)) == len(ids)


@pytest.mark.parametrize("rate", [0, -0.1, 1.5])
def test_sample_bad_rate(rate):
    with pytest.raises(UsageError):
        sample(rate)


# -- Select ------------------------------------------------------------------------------------------------------


def test_select_marks_but_never_drops():
    docs = [
        doc(id="a", int_score=5, language="en"),
        doc(id="b", int_score=2, language="en"),
        doc(id="c", int_score=5, language="de"),
        doc(id="d", language="en"),
        doc(id="e", int_score=1, language="de", _fp_reject="text_empty"),
        doc(id="f", int_score=4, language="en", _fp_filtered="earlier"),
    ]
    out = list(Select(where("int_score >= 4"), language_is("en")).run(iter(docs)))
    assert [d.id for d in out] == ["a", "b", "c", "d", "e", "f"]
    by_id = {d.id: d.metadata for d in out}
    assert "_fp_filtered" not in by_id["a"]
    assert by_id["b"]["_fp_filtered"] == "where:int_score>=4"
    assert by_id["c"]["_fp_filtered"] == "language:en"
    assert by_id["d"]["_fp_filtered"] == "where:int_score>=4"
    # already rejected by the reader: passed on untouched
    assert by_id["e"] == {"int_score": 1, "language": "de", "_fp_reject": "text_empty"}
    # already filtered: the earlier reason stays
    assert by_id["f"]["_fp_filtered"] == "earlier"
    for m in by_id.values():
        if "_fp_filtered" in m:
            assert isinstance(m["_fp_filtered"], str) and m["_fp_filtered"]


def test_select_without_filters_selects_everything():
    docs = [doc(id=str(i)) for i in range(5)]
    out = list(Select().run(iter(docs)))
    assert len(out) == 5 and all("_fp_filtered" not in d.metadata for d in out)


# -- TokenBudget -------------------------------------------------------------------------------------------------


def _budget_run(budget, docs, world_size=1):
    out = list(TokenBudget(budget).run(iter(docs), rank=0, world_size=world_size))
    assert [d.id for d in out] == [d.id for d in docs]  # none dropped
    return [d.id for d in out if "_fp_filtered" not in d.metadata and "_fp_reject" not in d.metadata], out


def test_token_budget_selects_until_share_reached():
    docs = [doc(id=f"d{i}", token_count=300) for i in range(10)]
    selected, out = _budget_run(1000, docs)
    assert selected == ["d0", "d1", "d2", "d3"]
    assert all(d.metadata["_fp_filtered"] == "over_budget" for d in out[4:])


def test_token_budget_share_per_task():
    docs = [doc(id=f"d{i}", token_count=300) for i in range(10)]
    selected, _ = _budget_run(1000, docs, world_size=2)  # share 500: 300 < 500 after one, 600 after two
    assert selected == ["d0", "d1"]


def test_token_budget_ignores_rejected_and_filtered():
    docs = [
        doc(id="r", token_count=10_000, _fp_reject="text_empty"),
        doc(id="f", token_count=10_000, _fp_filtered="sample:0.5"),
        doc(id="a", token_count=300),
        doc(id="b", token_count=300),
    ]
    out = list(TokenBudget(500).run(iter(docs)))
    assert out[0].metadata == {"token_count": 10_000, "_fp_reject": "text_empty"}
    assert out[1].metadata["_fp_filtered"] == "sample:0.5"
    assert "_fp_filtered" not in out[2].metadata and "_fp_filtered" not in out[3].metadata


def test_token_budget_without_token_count_uses_bytes():
    assert doc_tokens(doc(text="x" * 400)) == 100
    assert doc_tokens(doc(text="x" * 400, token_count=7)) == 7
    assert doc_tokens(doc(text="x" * 400, token_count="7")) == 100
    docs = [doc(id=f"d{i}", text="x" * 4000) for i in range(5)]  # ~1000 tokens each
    selected, _ = _budget_run(1500, docs)
    assert selected == ["d0", "d1"]


def test_token_budget_must_be_positive():
    with pytest.raises(UsageError):
        TokenBudget(0)


def test_token_budget_resumes_from_ledger(tmp_path):
    from finephrase.store.ledger import Ledger

    Ledger(tmp_path, rank=0).commit(0, {}, {"pos": {"read": 3}, "docs": 3, "selected_tokens": 900})
    docs = [doc(id=f"d{i}", token_count=300) for i in range(5)]
    out = list(TokenBudget(1000, resume_dir=str(tmp_path)).run(iter(docs), rank=0, world_size=1))
    assert [d.id for d in out if "_fp_filtered" not in d.metadata] == ["d0"]
    # another rank has no ledger: it starts from zero
    docs = [doc(id=f"d{i}", token_count=300) for i in range(5)]
    out = list(TokenBudget(1000, resume_dir=str(tmp_path)).run(iter(docs), rank=1, world_size=1))
    assert [d.id for d in out if "_fp_filtered" not in d.metadata] == ["d0", "d1", "d2", "d3"]


def test_passthrough_out_of_range_int_goes_to_metadata():
    out = passthrough({"token_count": 2**64 - 1, "int_score": 2**63})
    assert out["token_count"] is None and out["int_score"] is None
    assert orjson.loads(out["metadata"]) == {"token_count": 2**64 - 1, "int_score": 2**63}
    pa.Table.from_pylist([{**FIXED, **out}], schema=OUTPUT_SCHEMA)
