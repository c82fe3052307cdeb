"""Word pieces merged into words: the sums, the special tokens, truncation and tokenizers' offsets."""

import numpy as np
import pytest

from relprop.text.words import merge_word_pieces


def test_pieces_are_summed_into_whitespace_words_and_specials_kept_apart():
    text = "It's unbelievable!"
    # [CLS] it ' s un ##believ ##able ! [SEP], offsets as a WordPiece tokenizer gives them
    offsets = [(0, 0), (0, 2), (2, 3), (3, 4), (5, 7), (7, 13), (13, 17), (17, 18), (0, 0)]
    relevance = [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]
    words = merge_word_pieces(text, offsets, relevance)
    assert words.words == ["It's", "unbelievable!"]
    np.testing.assert_array_equal(words.relevance, [7.0, 120.0])
    assert words.special == 128.5
    assert words.spans == [(0, 4), (5, 18)]
    assert words.index == [0, 1]
    assert not words.truncated
    assert words.relevance.sum() + words.special == sum(relevance)


def test_leading_space_tokens_belong_to_the_word_they_start():
    text = "the cat sat"
    offsets = [(0, 3), (3, 7), (7, 11)]  # GPT-2's BPE: " cat", " sat" carry their leading space
    words = merge_word_pieces(text, offsets, [1.0, 2.0, 3.0])
    assert words.words == ["the", "cat", "sat"]
    np.testing.assert_array_equal(words.relevance, [1.0, 2.0, 3.0])
    assert words.special == 0.0


def test_special_mask_overrides_offsets_and_truncation_is_reported():
    text = "one two three four"
    offsets = [(0, 3), (4, 7), (8, 13)]  # "four" was cut off
    words = merge_word_pieces(text, offsets, [1.0, 2.0, 3.0], special=[True, False, False])
    assert words.words == ["two", "three"]
    assert words.index == [1, 2]
    assert words.special == 1.0
    assert words.truncated


def test_real_tokenizer_offsets(minilm_tokenizer):
    text = "The hotel was UNBELIEVABLY lovely, really."
    encoded = minilm_tokenizer(text, return_offsets_mapping=True, return_special_tokens_mask=True)
    relevance = np.arange(1.0, len(encoded["input_ids"]) + 1)
    words = merge_word_pieces(
        text, encoded["offset_mapping"], relevance, special=encoded["special_tokens_mask"]
    )
    assert words.words == text.split()
    assert words.special == relevance[0] + relevance[-1]
    np.testing.assert_allclose(words.relevance.sum() + words.special, relevance.sum())
    # the word really is split into pieces, and they were merged
    assert len(minilm_tokenizer.tokenize("UNBELIEVABLY")) > 1


def test_mismatched_lengths_are_named():
    with pytest.raises(ValueError, match="2 token offsets but relevance of shape"):
        merge_word_pieces("a b", [(0, 1), (2, 3)], [1.0])
    with pytest.raises(ValueError, match="special-token flags"):
        merge_word_pieces("a b", [(0, 1), (2, 3)], [1.0, 2.0], special=[True])
