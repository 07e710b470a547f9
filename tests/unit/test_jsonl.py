"""repertory.jsonl.read_jsonl: one reader for batch input and session imports."""

import io
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from repertory.errors import InvalidInput
from repertory.jsonl import JsonlLineError, read_jsonl


def read(tmp_path, data: bytes, **kw):
    p = tmp_path / "in.jsonl"
    p.write_bytes(data)
    return list(read_jsonl(p, **kw))


def errors(results):
    return {n: v for n, v in results if isinstance(v, JsonlLineError)}


def test_values_with_line_numbers_blank_lines_skipped(tmp_path):
    out = read(tmp_path, b'{"id": "a"}\n\n   \n[1, 2]\r\n"x"\n')
    assert out == [(1, {"id": "a"}), (4, [1, 2]), (5, "x")]


def test_each_bad_line_is_reported_and_reading_goes_on(tmp_path):
    data = (b'{"id": 1}\n'
            b'\xff\xfe not utf-8\n'
            b'{"id": \n'
            + b"[" * 100_000 + b"\n"
            + b'{"n": NaN}\n'
            b'{"n": 1e400}\n'
            b'{"id": 7}\n'
            b'{"torn": ')
    out = read(tmp_path, data)
    bad = errors(out)
    assert [n for n, v in out if not isinstance(v, JsonlLineError)] == [1, 7]
    assert {n: e.kind for n, e in bad.items()} == {2: "encoding", 3: "json", 4: "depth", 5: "json", 6: "json",
                                                   8: "torn"}
    assert all(e.line == n and isinstance(e, InvalidInput) for n, e in bad.items())
    assert "line 2 is not UTF-8 text (byte 0xff at offset 0); save the file as UTF-8" in str(bad[2])
    assert "line 3 is not JSON (Expecting value at column 8); fix or remove that line" in str(bad[3])
    assert "line 4 nests more than 64 levels deep" in str(bad[4])
    assert "NaN is not JSON" in str(bad[5])
    assert "too large" in str(bad[6])
    assert "line 8 is the last, has no newline and cannot be read: the file was probably cut off" in str(bad[8])
    assert str(tmp_path / "in.jsonl") in str(bad[2])


def test_depth_limit_counts_brackets_outside_strings(tmp_path):
    deep_string = '{"s": "' + "[" * 500 + '"}'
    ok = "[" * 64 + "]" * 64
    out = read(tmp_path, f"{deep_string}\n{ok}\n{'[' * 65 + ']' * 65}\n".encode())
    assert out[0] == (1, {"s": "[" * 500})
    assert out[1][0] == 2 and not isinstance(out[1][1], JsonlLineError)
    assert errors(out)[3].kind == "depth"
    assert errors(read(tmp_path, b"[[[1]]]\n", max_depth=2))[1].kind == "depth"


def test_a_last_line_without_newline(tmp_path):
    assert read(tmp_path, b'{"a": 1}\n{"b": 2}') == [(1, {"a": 1}), (2, {"b": 2})]  # people's files
    out = read(tmp_path, b'{"a": 1}\n{"b": 2}', require_newline=True)  # files repertory wrote
    assert out[0] == (1, {"a": 1}) and errors(out)[2].kind == "torn"
    assert read(tmp_path, b'{"a": 1}\n   ', require_newline=True) == [(1, {"a": 1})]


def test_over_long_lines_are_skipped_without_holding_them(tmp_path):
    big = b'"' + b"x" * (8 * 2**20) + b'"'
    p = tmp_path / "big.jsonl"
    p.write_bytes(b'{"id": 1}\n' + big + b"\n" + b'{"id": 3}\n' + b"y" * 100)
    tracemalloc.start()
    try:
        out = list(read_jsonl(p, max_line_bytes=1000))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20  # the 8 MiB line was never held whole
    assert [(n, v) for n, v in out if not isinstance(v, JsonlLineError)] == [(1, {"id": 1}), (3, {"id": 3})]
    bad = errors(out)
    assert bad[2].kind == "too_long" and "longer than 1000 bytes; split it, or raise max_line_bytes" in str(bad[2])
    assert bad[4].kind == "torn"


def test_line_limit_boundary(tmp_path):
    line = b'"' + b"x" * 8 + b'"'  # 10 bytes
    assert read(tmp_path, line + b"\n", max_line_bytes=10) == [(1, "x" * 8)]
    assert errors(read(tmp_path, line + b"\n", max_line_bytes=9))[1].kind == "too_long"
    assert read(tmp_path, line, max_line_bytes=10) == [(1, "x" * 8)]


def test_bom_on_the_first_line(tmp_path):
    assert read(tmp_path, b'\xef\xbb\xbf{"a": 1}\n') == [(1, {"a": 1})]


def test_sources_other_than_paths():
    assert list(read_jsonl(['{"a": 1}\n', "", b"[2]"])) == [(1, {"a": 1}), (3, [2])]
    assert list(read_jsonl(io.BytesIO(b'1\n\n{"b": 2}\n'), name="upload")) == [(1, 1), (3, {"b": 2})]
    text = io.StringIO('{"c": 3}\n{"d":')
    out = list(read_jsonl(text, name="t"))
    assert out[0] == (1, {"c": 3}) and out[1][1].kind == "torn" and "t line 2" in str(out[1][1])
    bad = errors(read_jsonl(["x" * 50], max_line_bytes=10))
    assert bad[1].kind == "too_long"


def test_bad_sources_raise_at_once(tmp_path):
    with pytest.raises(InvalidInput, match="cannot read"):
        read_jsonl(tmp_path / "missing.jsonl")
    with pytest.raises(InvalidInput, match="iterable of lines"):
        read_jsonl(b'{"a": 1}\n')
    with pytest.raises(InvalidInput, match="max_line_bytes"):
        read_jsonl([], max_line_bytes=0)
    with pytest.raises(InvalidInput, match="lines as str or bytes"):
        list(read_jsonl([{"a": 1}]))


def test_the_file_is_closed(tmp_path):
    p = tmp_path / "in.jsonl"
    p.write_bytes(b"1\n2\n3\n")
    it = read_jsonl(p)
    assert next(it) == (1, 1)
    f = it.gi_frame.f_locals["close"]
    assert not f.closed
    it.close()  # a caller stopping early: the file goes with the iterator
    assert f.closed
    done = read_jsonl(p)
    assert list(done) == [(1, 1), (2, 2), (3, 3)]


def test_line_error_survives_shipping_between_processes():
    # Ray rebuilds an error in the caller from its __reduce__; never by loading a pickle here.
    e = JsonlLineError("in.jsonl line 3 is not valid JSON", 3, "json")
    rebuild, args = e.__reduce__()
    back = rebuild(*args)
    assert (type(back), str(back), back.line, back.kind) == (JsonlLineError, str(e), 3, "json")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=8))
def test_never_raises_on_any_bytes(lines):
    data = b"\n".join(lines)
    for n, v in read_jsonl(io.BytesIO(data), max_line_bytes=30, max_depth=3):
        assert 1 <= n <= data.count(b"\n") + 1
        if isinstance(v, JsonlLineError):
            assert v.line == n and v.kind in {"encoding", "json", "depth", "too_long", "torn"}
