"""The C readers of Binance's level arrays against the parser's reference (regex + msgspec)."""

from __future__ import annotations

import dataclasses
from array import array

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from optional_c import c_extension
from shriven.events import BinanceDepth, decode_batch, depth_levels, encode_batch
from shriven.feeds.binance import parse

accel = c_extension("shriven.book._levels")

digits = st.text("0123456789", min_size=0, max_size=22)
decimal = st.one_of(
    st.builds(lambda i, f: f'"{i}.{f}"', digits, digits),
    st.builds(lambda i: f'"{i}"', digits),
    st.sampled_from(['"1e5"', '"-1"', '"+1"', '" 1"', '"1 "', "1", '"1.2.3"', '"١"', "null"]),
)
space = st.sampled_from(["", " ", "\n", "\t ", "\r\n  "])
pair = st.builds(
    lambda a, p, b, c, q, d: f"[{a}{p}{b},{c}{q}{d}]", space, decimal, space, space, decimal, space
)
odd_pair = st.sampled_from(['["1"]', '["1","2","3"]', "{}", '[["1","2"]]', "[]", '"1"'])
arrays = st.builds(
    lambda s1, items, seps, s2: (
        "["
        + s1
        + "".join(
            (sep if i else "") + item
            for i, (item, sep) in enumerate(zip(items, seps, strict=False))
        )
        + s2
        + "]"
    ),
    space,
    st.lists(st.one_of(pair, pair, pair, odd_pair), max_size=6),
    st.lists(st.sampled_from([",", " , ", ",\n", ""]), min_size=6, max_size=6),
    space,
)
texts = st.one_of(arrays, st.sampled_from(["", "[", "]", "[[]", '[["1","2"],]', " []", "[] "]))


@settings(max_examples=300, deadline=None)
@given(texts)
def test_c_level_reader_equals_the_reference_on_any_text(text: str) -> None:
    raw = text.encode()
    want = parse._levels(msgspec.Raw(raw)) if _is_json(raw) else _regex_only(raw)
    assert accel.json_levels(msgspec.Raw(raw)) == want
    assert accel.json_levels(raw) == want


def _is_json(raw: bytes) -> bool:
    try:
        msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return False
    return True


def _regex_only(raw: bytes) -> object:
    # Text that is not JSON never reaches the reader (the message decode refuses it first);
    # for it the reference's regex decides alone.
    return None if parse._LEVELS_JSON(raw) is None else "regex-accepts-non-json"


def test_the_parser_reads_levels_with_the_c_reader() -> None:
    assert parse._read_levels is accel.json_levels
    raw = msgspec.Raw(b'[["61837.63000000", "1.54698000"],["0.1","0"]]')
    assert parse._read_levels(raw) == (("61837.63000000", "1.54698000"), ("0.1", "0"))


@settings(max_examples=300, deadline=None)
@given(texts, texts)
def test_c_depth_levels_reader_equals_the_reference_on_any_text(b: str, a: str) -> None:
    raw_b, raw_a = b.encode(), a.encode()
    got = accel.json_depth_levels(msgspec.Raw(raw_b), raw_a)
    if not (_is_json(raw_b) and _is_json(raw_a)):
        assert got is None  # as for json_levels: the grammar accepts no text that is not JSON
        return
    assert got == parse._depth_levels_reference(raw_b, raw_a)


def test_a_live_diff_keeps_its_levels_as_read_and_gives_the_same_record() -> None:
    raw = (
        b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT",'
        b'"U":5,"u":6,"b":[["61837.63000000","1.54698000"],["0.12345678901234567890","0"]],'
        b'"a":[["61837.64000000","0.00000000"]]}}'
    )
    d = parse.parse_message(raw, 7, 8)
    lv = depth_levels(d)  # type: ignore[arg-type]
    assert lv is not None
    want = BinanceDepth(
        7, 8, "BTCUSDT", 5, 6, 1,
        (("61837.63000000", "1.54698000"), ("0.12345678901234567890", "0")),
        (("61837.64000000", "0.00000000"),),
    )  # fmt: skip
    assert d == want and repr(d) == repr(want)
    assert encode_batch([d, want, d]) == encode_batch([want, want, want])
    assert decode_batch(encode_batch([d])) == [want]
    assert array("d", lv.bid_values).tolist() == [61837.63, 1.54698, 0.12345678901234568, 0.0]
    # setting a side makes it a plain record again: nothing stale is written
    d.asks = ()
    assert depth_levels(d) is None
    assert decode_batch(encode_batch([d])) == [dataclasses.replace(want, asks=())]


def test_a_diff_larger_than_the_readers_stack_buffers_reads_the_same() -> None:
    # 1,000 levels a side is far past the C reader's 2 kB start buffers, so they grow on the heap
    rows = [f'["{61000 + i * 0.01:.8f}","{(i % 97) / 7:.8f}"]' for i in range(1000)]
    raw_b = ("[" + ",".join(rows) + "]").encode()
    raw_a = ("[" + ",".join(reversed(rows)) + "]").encode()
    got = accel.json_depth_levels(raw_b, raw_a)
    assert got == parse._depth_levels_reference(raw_b, raw_a)
    assert array("d", got[1])[:2].tolist() == [61000.0, 0.0]
