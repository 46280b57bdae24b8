"""``python cli.py tokenizer bench`` on a small text: every row measured, the ids of both libraries
equal (the bench refuses otherwise), the table printed; no timing thresholds."""
import math

import pytest

from numpy_llm.bench.tokenizer import format_tokenizer_table, run_tokenizer_bench
from numpy_llm.cli import main
from numpy_llm.data import builtin_sample

pytest.importorskip("regex")
pytest.importorskip("tokenizers")


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "sample.txt"
    path.write_bytes(builtin_sample()[:30000].tobytes() + "naïve café, 東京 🙂\n".encode() * 20)
    return str(path)


def test_every_part_is_measured_for_both_libraries(text_file):
    record = run_tokenizer_bench(text_file, text_file, train_vocab=300, encode_vocab=400, repeats=2, workers=1)
    assert [r["what"].split()[0] for r in record["rows"]] == ["train", "encode", "encode", "decode"]
    for r in record["rows"]:
        assert all(math.isfinite(r[side]) and r[side] > 0 for side in ("ours_s", "theirs_s"))
    assert record["bytes_per_token"] > 1.0
    table = format_tokenizer_table(record)
    assert table.count("\n") == 5 and "MB/s" in table and "tokenizers " in table


@pytest.mark.parametrize("argv", [["--data", "no/such.txt"], ["--repeats", "0"], ["--vocab-size", "100"]])
def test_bad_input_is_one_line(text_file, capsys, argv):
    argv = argv if argv[0] == "--data" else ["--data", text_file, *argv]
    assert main(["tokenizer", "bench", *argv]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_a_text_that_is_not_utf8_is_refused_in_one_line(tmp_path, capsys):
    path = tmp_path / "binary.txt"
    path.write_bytes(builtin_sample()[:20000].tobytes() + b"\xff\xfe")
    assert main(["tokenizer", "bench", "--data", str(path), "--vocab-size", "300", "--encode-vocab-size", "300",
                 "--repeats", "1"]) == 2
    assert "not UTF-8" in capsys.readouterr().err
