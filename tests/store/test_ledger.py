"""The commit ledger: atomic chunk commits, torn lines, recovery of uncommitted files."""

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from finephrase.store.ledger import Ledger, all_ledgers, chunk_filename


def _table(prefix: str, n: int = 2) -> pa.Table:
    return pa.table({"id": [f"{prefix}{i}" for i in range(n)], "text": [f"text {prefix} {i}" for i in range(n)]})


def _pos(i: int) -> dict:
    return {"file_index": 0, "offset": 100 * (i + 1), "line": 2 * (i + 1), "read": 2 * (i + 1)}


@pytest.fixture
def committed(tmp_path):
    """Two committed chunks of rank 0."""
    led = Ledger(tmp_path, rank=0)
    for i in range(2):
        led.commit(i, {"faq": _table(f"ok{i}-"), "rejects/faq": _table(f"rej{i}-", 1)}, {"pos": _pos(i), "docs": 2})
    return led


def test_chunk_filename():
    assert chunk_filename(0, 0) == "00000_000000.parquet"
    assert chunk_filename(3, 17) == "00003_000017.parquet"


def test_commit_writes_files_and_ledger(tmp_path, committed):
    for i in range(2):
        name = f"00000_00000{i}.parquet"
        assert (tmp_path / "faq" / name).is_file()
        assert (tmp_path / "rejects" / "faq" / name).is_file()
        assert pq.read_table(tmp_path / "faq" / name).to_pylist() == _table(f"ok{i}-").to_pylist()
        assert pq.read_table(tmp_path / "rejects" / "faq" / name)["id"].to_pylist() == [f"rej{i}-0"]
    # no temporary files left behind
    assert not [p for p in tmp_path.rglob("*.tmp")]

    state = committed.read()
    assert len(state.entries) == 2
    assert [e["chunk"] for e in state.entries] == [0, 1]
    assert state.position == _pos(1)
    assert committed.resume_position() == _pos(1)
    assert state.next_chunk == 2
    assert state.finished is False
    assert state.entries[0]["docs"] == 2
    assert state.entries[1]["files"] == ["faq/00000_000001.parquet", "rejects/faq/00000_000001.parquet"]
    assert committed.path == tmp_path / ".ledger" / "rank_00000.jsonl"
    assert committed.path.read_bytes().count(b"\n") == 2


def test_empty_ledger(tmp_path):
    state = Ledger(tmp_path, rank=4).read()
    assert state.entries == [] and state.position is None and state.next_chunk == 0 and not state.finished


def test_torn_last_line_ignored_and_repaired(committed):
    good = committed.path.read_bytes()
    with open(committed.path, "ab") as f:
        f.write(b'{"chunk": 2, "pos": {"file_index": 0, "off')
    torn = committed.path.read_bytes()

    state = committed.read()
    assert len(state.entries) == 2
    assert state.position == _pos(1)
    assert committed.path.read_bytes() == torn  # reading alone does not modify the file

    state = committed.read(repair=True)
    assert len(state.entries) == 2
    assert committed.path.read_bytes() == good

    # the ledger keeps working after the repair
    committed.commit(2, {"faq": _table("ok2-")}, {"pos": _pos(2), "docs": 2})
    state = committed.read()
    assert [e["chunk"] for e in state.entries] == [0, 1, 2]
    assert state.position == _pos(2)


def test_torn_line_that_is_valid_json_without_newline_is_not_a_commit(committed):
    with open(committed.path, "ab") as f:
        f.write(orjson.dumps({"chunk": 2, "pos": _pos(2)}))  # complete JSON, but the newline never got written
    assert len(committed.read().entries) == 2
    committed.read(repair=True)
    assert committed.path.read_bytes().endswith(b"\n")
    assert len(committed.read().entries) == 2


def test_recover_deletes_uncommitted_files(tmp_path, committed):
    faq, rej = tmp_path / "faq", tmp_path / "rejects" / "faq"
    leftovers = [faq / "00000_000005.parquet", faq / ".00000_000006.parquet.tmp", rej / "00000_000002.parquet"]
    others = [
        faq / "00001_000005.parquet",  # another rank's committed-or-not files are not ours to delete
        faq / ".00001_000006.parquet.tmp",
        faq / "notes.txt",
    ]
    for p in leftovers + others:
        p.write_bytes(b"partial")
    with open(committed.path, "ab") as f:
        f.write(b'{"chunk": 2')  # the interrupted commit of chunk 2

    state = committed.recover([faq, rej, tmp_path / "not_there"])
    assert [e["chunk"] for e in state.entries] == [0, 1]
    for p in leftovers:
        assert not p.exists(), p
    for p in others:
        assert p.exists(), p
    for i in range(2):
        assert (faq / chunk_filename(0, i)).is_file()
        assert (rej / chunk_filename(0, i)).is_file()
    assert committed.path.read_bytes().endswith(b"\n")  # ledger repaired too


def test_recover_of_other_rank_keeps_rank0_files(tmp_path, committed):
    faq = tmp_path / "faq"
    (faq / "00001_000000.parquet").write_bytes(b"x")  # rank 1 never committed anything
    Ledger(tmp_path, rank=1).recover([faq])
    assert not (faq / "00001_000000.parquet").exists()
    assert (faq / "00000_000000.parquet").is_file() and (faq / "00000_000001.parquet").is_file()


def test_mark_finished(committed):
    committed.mark_finished({"docs": 4})
    state = committed.read()
    assert state.finished is True
    assert len(state.entries) == 2  # the finish line is not a chunk
    assert state.position == _pos(1)
    assert state.next_chunk == 2


def test_all_ledgers(tmp_path, committed):
    Ledger(tmp_path, rank=3).commit(0, {"faq": _table("r3-")}, {"pos": _pos(0), "docs": 2})
    Ledger(tmp_path, rank=3).mark_finished()
    ledgers = all_ledgers(tmp_path)
    assert sorted(ledgers) == [0, 3]
    assert len(ledgers[0].entries) == 2 and not ledgers[0].finished
    assert len(ledgers[3].entries) == 1 and ledgers[3].finished
    assert (tmp_path / "faq" / "00003_000000.parquet").is_file()
    assert all_ledgers(tmp_path / "nothing") == {}


def test_corrupt_line_in_the_middle_is_an_error_not_a_truncation(committed):
    from finephrase.errors import FinephraseError

    path = committed.path
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0][:10] + b"\n" + b"".join(lines[1:]))
    with pytest.raises(FinephraseError, match="corrupt at line 1"):
        committed.read(repair=True)
    assert path.read_bytes().count(b"\n") == len(lines)  # nothing was cut away


# -- committed ranges (chunks commit in any order) ----------------------------------------------------------------


def _range_entry(led, chunk, first, last):
    led.commit(chunk, {"faq": _table(f"c{chunk}-")}, {"first": first, "pos": {"file_index": 0, "offset": last,
                                                                            "line": last, "read": last}, "docs": 2})


def test_out_of_order_commits_leave_gaps(tmp_path):
    led = Ledger(tmp_path, rank=0)
    _range_entry(led, 1, 3, 4)  # chunk 1 commits before chunk 0 (a straggler in chunk 0)
    _range_entry(led, 0, 1, 2)
    _range_entry(led, 3, 7, 8)  # chunk 2 (5-6) never committed: killed
    state = led.read()
    assert [(a, b) for a, b, _ in state.ranges()] == [(1, 4), (7, 8)]
    gaps = state.gaps()
    assert [(g.first, g.last) for g in gaps] == [(5, 6), (9, None)]
    assert gaps[0].start["read"] == 4 and gaps[1].start["read"] == 8  # each read starts after a committed range
    assert state.position["read"] == 4  # the end of the committed prefix
    assert state.next_chunk == 4  # new chunks are numbered after the highest committed one
    assert state.committed_docs == 6


def test_gap_at_the_beginning(tmp_path):
    led = Ledger(tmp_path, rank=0)
    _range_entry(led, 1, 3, 4)
    state = led.read()
    assert [(g.start, g.first, g.last) for g in state.gaps()] == [(None, 1, 2), (state.ranges()[0][2], 5, None)]
    assert state.position is None and state.prefix_frac == 0.0


def test_ledgers_without_first_are_a_prefix(tmp_path, committed):
    """Ledgers written before out-of-order commits have no `first`: their chunks followed each other."""
    state = committed.read()
    assert [(a, b) for a, b, _ in state.ranges()] == [(1, 4)]
    assert [(g.first, g.last) for g in state.gaps()] == [(5, None)]
