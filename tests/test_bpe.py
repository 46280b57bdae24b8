"""Byte-level BPE: training, encoding and decoding, proven against Hugging Face's ``tokenizers``
(trained inside the test, offline) on GPT-2's and Hugging Face's files, both ways."""
import json
import random

import numpy as np
import pytest

from numpy_llm import files, tokenizer as byte_tokenizer
from numpy_llm.bpe import BYTES, ENDOFTEXT, Tokenizer, merge, pre_split
from numpy_llm.bpe_train import train_bpe
from numpy_llm.errors import UsageError
from numpy_llm.tokenizer_files import (BYTE_TO_CHAR, load_tokenizer, save_tokenizer, tokenizer_arrays,
                                       tokenizer_from_arrays)
from same_sequence import assert_same_sequence

pytest.importorskip("regex")

WORDS = ["the", "The", "quick", "brown", "fox", "jumps", "über", "naïve", "café", "Ελληνικά", "λόγος", "Москва",
         "привет", "東京", "日本語のテキスト", "中文", "مرحبا", "שלום", "हिन्दी", "한국어", "e\u0301", "🙂", "👍🏽", "🇫🇷",
         "don't", "I'll", "we've", "they're", "it's", "I'm", "he'd", "'tis", "12345", "3.14159", "2024", "٣٤", "Ⅻ",
         "²", "x_y", "foo-bar", "a.b.c", "(parens)", "[1]", "#hash", "@user", "http://example.com/a?b=c", "$100",
         "!!!", "...", "—", "«quote»", "\u200b", "ß", "İ", "ﬁ"]
SPACES = [" ", " ", " ", "  ", "   ", "\n", "\n\n", "\t", " \t ", "\r\n", "\u00a0", "\u3000", "\u2028", "\x0b",
          "\x0c", "\x1c", "\x85", " \n ", "    \n"]


def varied_text(n_chars, seed=0):
    """Words of many scripts, digits, contractions, emoji and whitespace runs of every kind."""
    rnd = random.Random(seed)
    parts, size = [], 0
    while size < n_chars:
        part = rnd.choice(WORDS) + rnd.choice(SPACES)
        parts.append(part)
        size += len(part)
    return "".join(parts)


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    """A byte-level BPE of 600 tokens trained by Hugging Face's library, saved both ways:
    tokenizer.json in one folder, vocab.json + merges.txt in another."""
    tokenizers = pytest.importorskip("tokenizers")
    hf = tokenizers.Tokenizer(tokenizers.models.BPE())
    hf.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(vocab_size=600, special_tokens=[ENDOFTEXT], show_progress=False,
                                             initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
    hf.train_from_iterator([varied_text(200_000, seed=1)], trainer)
    root = tmp_path_factory.mktemp("hf")
    (root / "json").mkdir()
    (root / "files").mkdir()
    hf.save(str(root / "json" / "tokenizer.json"))
    hf.model.save(str(root / "files"))
    return hf, root


@pytest.mark.parametrize("layout", ["json", "files"])
def test_encoding_equals_hugging_face_on_its_own_files(hf_folder, layout):
    hf, root = hf_folder
    ours = load_tokenizer(str(root / layout))
    assert ours.vocab_size == hf.get_vocab_size() == 600
    if layout == "json":
        assert ours.special == {ENDOFTEXT: hf.token_to_id(ENDOFTEXT)}
    text = varied_text(1_000_000, seed=2) + ENDOFTEXT * (layout == "json") + "tail"
    expected = hf.encode(text).ids
    got = ours.encode(text)
    assert_same_sequence(got.tolist(), expected)
    assert_same_sequence(ours.decode(got), text.encode("utf-8"))


def test_a_tokenizer_trained_here_loads_in_hugging_face_and_encodes_the_same(tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    ours = train_bpe(varied_text(100_000, seed=3), 400, special=[ENDOFTEXT])
    save_tokenizer(ours, str(tmp_path))
    text = varied_text(50_000, seed=4) + ENDOFTEXT + "end"
    expected = ours.encode(text).tolist()
    assert_same_sequence(tokenizers.Tokenizer.from_file(str(tmp_path / "tokenizer.json")).encode(text).ids, expected)
    assert_same_sequence(load_tokenizer(str(tmp_path)).encode(text).tolist(), expected)
    (tmp_path / "tokenizer.json").unlink()                            # GPT-2's two files alone
    assert_same_sequence(load_tokenizer(str(tmp_path)).encode(text).tolist(), expected)
    transformers = pytest.importorskip("transformers")
    save_tokenizer(ours, str(tmp_path))
    auto = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
    assert_same_sequence(auto.encode(text), expected)
    assert_same_sequence(auto.decode(expected), text)


def test_decode_of_encode_is_every_byte_string():
    hypothesis = pytest.importorskip("hypothesis")
    tok = train_bpe(varied_text(20_000, seed=5), 320, special=[ENDOFTEXT])

    @hypothesis.settings(max_examples=300, deadline=None)
    @hypothesis.given(hypothesis.strategies.binary(max_size=200) | hypothesis.strategies.text(max_size=100).map(
        lambda s: s.encode("utf-8", errors="surrogatepass")))
    def round_trip(data):
        assert tok.decode(tok.encode(data)) == data
    round_trip()


def test_invalid_utf8_is_encoded_and_decoded_byte_for_byte():
    tok = train_bpe(varied_text(20_000, seed=6), 300)
    data = b"caf\xc3\xa9 \xff\xfe broken \xc3 tail \xe2\x82 x\x80"
    assert tok.decode(tok.encode(data)) == data
    assert tok.decode_text(tok.encode(data)) == data.decode("utf-8", errors="replace")


def naive_train(text, n_merges):
    """The definition, recounting every pair after every merge: the reference for train_bpe."""
    chunks = [list(chunk.encode("utf-8")) for chunk in pre_split(text)]
    merges = []
    for rank in range(n_merges):
        counts = {}
        for ids in chunks:
            for pair in zip(ids, ids[1:]):
                counts[pair] = counts.get(pair, 0) + 1
        if not counts:
            break
        best = min(counts, key=lambda pair: (-counts[pair], pair))
        merges.append(best)
        chunks = [merge(ids, best, 256 + rank) for ids in chunks]
    return merges


def test_incremental_counts_give_the_same_merges_as_recounting():
    text = varied_text(15_000, seed=7)
    assert train_bpe(text, 256 + 80).merges == naive_train(text, 80)


def test_a_broken_count_update_is_caught(monkeypatch):
    """The reference comparison can fail: a trainer that never re-ranks the pairs a merge changed differs."""
    import numpy_llm.bpe_train as bpe_train
    monkeypatch.setattr(bpe_train.heapq, "heappush", lambda heap, item: None)
    text = varied_text(15_000, seed=7)
    assert bpe_train.train_bpe(text, 256 + 20).merges != naive_train(text, 20)


def test_merges_apply_by_rank_not_by_position():
    a, b, c = b"abc"
    tok = Tokenizer(merges=[(b, c), (a, b)])                          # 'bc' outranks 'ab'
    assert tok.encode("abc").tolist() == [a, 256]
    assert tok.encode("aaa").tolist() == [a, a, a]
    tok = Tokenizer(merges=[(a, a)])
    assert tok.encode("aaaaa").tolist() == [256, 256, a]              # left to right, no overlap


def test_special_tokens_are_matched_before_the_pre_split():
    tok = train_bpe(varied_text(20_000, seed=12), 270, special=[ENDOFTEXT])
    ids = tok.encode(f"hello{ENDOFTEXT}world").tolist()                # 13 ASCII bytes: one id
    assert ids.count(tok.special[ENDOFTEXT]) == 1 and tok.special[ENDOFTEXT] == 269
    assert tok.decode(ids) == f"hello{ENDOFTEXT}world".encode()


def test_the_byte_tokenizer_is_bpe_with_no_merges():
    data = bytes(range(256)) + "héllo".encode()
    assert BYTES.is_bytes and BYTES.vocab_size == 256 and BYTES.dtype == np.uint8
    assert np.array_equal(BYTES.encode(data), byte_tokenizer.encode(data))
    assert BYTES.decode(BYTES.encode(data)) == data


def test_checkpoint_arrays_round_trip():
    tok = train_bpe(varied_text(20_000, seed=8), 300, special=[ENDOFTEXT])
    again = tokenizer_from_arrays(tokenizer_arrays(tok), "test")
    assert again.fingerprint() == tok.fingerprint() and again.vocab == tok.vocab
    assert tokenizer_arrays(BYTES) == {} and tokenizer_from_arrays({}, "test").is_bytes


def test_training_reaches_the_vocabulary_size_and_shortens_the_text():
    text = varied_text(50_000, seed=9)
    tok = train_bpe(text, 512, special=[ENDOFTEXT])
    assert tok.vocab_size == 512 and tok.dtype == np.uint16
    assert len(tok.encode(text)) < len(text.encode()) / 2


@pytest.mark.parametrize("damage, message", [
    (lambda vocab, merges: vocab.pop(BYTE_TO_CHAR[65]), "not a byte-level BPE"),
    (lambda vocab, merges: merges.append("zz qq"), "not in the vocabulary"),
    (lambda vocab, merges: vocab.update({"Ġthe": 10_000}), "token ids must be"),
])
def test_broken_gpt2_files_are_one_line(tmp_path, damage, message):
    save_tokenizer(train_bpe(varied_text(20_000, seed=10), 300), str(tmp_path))
    vocab = json.loads((tmp_path / "vocab.json").read_text(encoding="utf-8"))
    merges = (tmp_path / "merges.txt").read_text(encoding="utf-8").splitlines()
    damage(vocab, merges)
    (tmp_path / "tokenizer.json").unlink()
    (tmp_path / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (tmp_path / "merges.txt").write_text("\n".join(merges) + "\n", encoding="utf-8")
    with pytest.raises(UsageError, match=message):
        load_tokenizer(str(tmp_path))


def test_an_unsupported_tokenizer_json_is_one_line(tmp_path):
    save_tokenizer(train_bpe(varied_text(20_000, seed=11), 300), str(tmp_path))
    spec = json.loads((tmp_path / "tokenizer.json").read_text(encoding="utf-8"))
    spec["normalizer"] = {"type": "NFC"}
    (tmp_path / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    with pytest.raises(UsageError, match="only GPT-2's byte-level BPE"):
        load_tokenizer(str(tmp_path))
    with pytest.raises(UsageError, match="not found"):
        load_tokenizer(str(tmp_path / "missing"))


@pytest.mark.parametrize("damage", [
    lambda spec: spec["model"].pop("vocab"),
    lambda spec: spec["model"].update(vocab=list(spec["model"]["vocab"])),
    lambda spec: spec.update(added_tokens=[{"id": 5}]),
    lambda spec: spec.update(pre_tokenizer="ByteLevel"),
    lambda spec: spec["model"]["vocab"].update({"!": None}),
    lambda spec: spec["model"]["vocab"].update({"!": 1.0}),
    lambda spec: spec["model"]["merges"].append("a b c"),
])
def test_a_malformed_tokenizer_json_is_one_line(tmp_path, damage):
    save_tokenizer(train_bpe(varied_text(20_000, seed=13), 300), str(tmp_path))
    spec = json.loads((tmp_path / "tokenizer.json").read_text(encoding="utf-8"))
    damage(spec)
    (tmp_path / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    with pytest.raises(UsageError):
        load_tokenizer(str(tmp_path))


def test_a_special_token_spelled_like_a_token_is_refused(tmp_path):
    tok = train_bpe("the cat and the hat " * 200, 280, special=["\u0120the"])      # GPT-2 spells " the" so
    with pytest.raises(UsageError, match="spelled like token"):
        save_tokenizer(tok, str(tmp_path))
    assert not (tmp_path / "vocab.json").exists()


def test_decode_refuses_ids_outside_the_vocabulary():
    tok = train_bpe(varied_text(5_000, seed=14), 270, special=[ENDOFTEXT])
    for bad in ([-1], [270]):
        with pytest.raises(ValueError, match="token ids must be in 0 .. 269"):
            tok.decode(bad)
    assert tok.decode([tok.special[ENDOFTEXT], 65], skip_special=True) == tok.vocab[65]


def test_a_write_cut_off_leaves_the_earlier_tokenizer_files_whole(tmp_path, monkeypatch):
    """The four files are one tokenizer: a stop while the third is written changes none of them
    (vocab.json and merges.txt, already written in full, are not renamed into place alone)."""
    save_tokenizer(train_bpe(varied_text(5_000, seed=7), 270), str(tmp_path))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    write_in_full = files._write_temporary

    def stopped_at_tokenizer_json(path, write):
        if path.endswith("tokenizer.json"):
            raise KeyboardInterrupt
        return write_in_full(path, write)
    monkeypatch.setattr(files, "_write_temporary", stopped_at_tokenizer_json)
    with pytest.raises(KeyboardInterrupt):
        save_tokenizer(train_bpe(varied_text(5_000, seed=8), 290), str(tmp_path))
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before      # no temporary left either
