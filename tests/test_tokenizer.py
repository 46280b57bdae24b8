"""The byte tokenizer and the streaming UTF-8 decoder."""
import random

import numpy as np
import pytest

from numpy_llm.tokenizer import VOCAB_SIZE, StreamDecoder, decode, decode_text, encode

N_RANDOM = 200            # random cases per round-trip test (seeded, so always the same)
REPLACEMENT = "\ufffd"


def random_text(rnd, max_len=40):
    """Any Unicode scalar values: ASCII, 2-, 3- and 4-byte UTF-8 (surrogates excluded: not encodable)."""
    ranges = [(0x0, 0x7F), (0x80, 0x7FF), (0x800, 0xD7FF), (0xE000, 0xFFFF), (0x10000, 0x10FFFF)]
    chars = []
    for _ in range(rnd.randrange(max_len + 1)):
        lo, hi = rnd.choice(ranges)
        chars.append(chr(rnd.randint(lo, hi)))
    return "".join(chars)


def test_vocab_is_256():
    assert VOCAB_SIZE == 256


def test_all_byte_values_round_trip():
    data = bytes(range(256))
    ids = encode(data)
    assert ids.dtype == np.uint8 and ids.shape == (256,)
    np.testing.assert_array_equal(ids, np.arange(256))
    assert decode(ids) == data


def test_random_binary_round_trips():
    rng = np.random.default_rng(0)
    for n in list(range(5)) + [int(x) for x in rng.integers(0, 1000, size=N_RANDOM)]:
        data = rng.integers(0, 256, size=n, dtype=np.uint8).tobytes()
        ids = encode(data)
        assert ids.dtype == np.uint8 and ids.shape == (n,)
        assert decode(ids) == data
        assert decode(ids.astype(np.int64).tolist()) == data          # any integer sequence decodes


def test_random_unicode_round_trips():
    rnd = random.Random(0)
    for _ in range(N_RANDOM):
        text = random_text(rnd)
        ids = encode(text)
        assert ids.dtype == np.uint8
        assert decode(ids) == text.encode("utf-8")
        assert decode_text(ids) == text


@pytest.mark.parametrize("text,n_bytes", [("", 0), ("hello", 5), ("héllo", 6), ("€", 3), ("𝄞", 4),
                                          ("日本語", 9), ("a\x00b", 3)])
def test_encode_is_utf8(text, n_bytes):
    ids = encode(text)
    assert ids.dtype == np.uint8 and ids.shape == (n_bytes,)
    assert ids.tobytes() == text.encode("utf-8")


def test_encode_returns_a_writable_copy():
    data = b"abc"
    ids = encode(data)
    ids[0] = ord("z")
    assert data == b"abc" and decode(ids) == b"zbc"


def test_hypothesis_round_trip():
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies

    @hypothesis.settings(max_examples=50, deadline=None, derandomize=True)
    @hypothesis.given(st.text(), st.binary())
    def check(text, data):
        assert decode_text(encode(text)) == text
        assert decode(encode(data)) == data
    check()


# --- StreamDecoder --------------------------------------------------------------------------------------

@pytest.mark.parametrize("char", ["é", "€", "𝄞"])
def test_multibyte_char_split_across_feeds(char):
    raw = char.encode("utf-8")
    decoder = StreamDecoder()
    pieces = [decoder.feed(encode(raw[i:i + 1])) for i in range(len(raw))]
    assert pieces[:-1] == [""] * (len(raw) - 1)        # nothing until the character is complete
    assert pieces[-1] == char
    assert decoder.flush() == ""


def test_stream_decoder_random_splits_reassemble_text():
    rnd = random.Random(1)
    for _ in range(50):
        text = random_text(rnd)
        raw = encode(text)
        decoder = StreamDecoder()
        out, i = [], 0
        while i < len(raw):
            n = rnd.randint(0, 5)
            out.append(decoder.feed(raw[i:i + n]))
            i += n
        out.append(decoder.flush())
        assert "".join(out) == text


def test_invalid_sequence_becomes_replacement_character():
    decoder = StreamDecoder()
    text = decoder.feed(encode(b"a\xffb")) + decoder.feed(encode(b"\xc3(")) + decoder.flush()
    assert text == f"a{REPLACEMENT}b{REPLACEMENT}("          # 0xff never valid; 0xc3 then a non-continuation


def test_flush_of_unfinished_character_gives_replacement():
    decoder = StreamDecoder()
    assert decoder.feed(encode("ok€".encode("utf-8")[:-1])) == "ok"
    assert decoder.flush() == REPLACEMENT


def test_feed_accepts_lists_and_empty():
    decoder = StreamDecoder()
    assert decoder.feed([]) == ""
    assert decoder.feed([104, 105]) == "hi"
