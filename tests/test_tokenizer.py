"""Caption tokenizers: PTB-like words, vocabulary order, BOS/EOS/padding, configs, vocabulary files and
tokenizer.json files of the `tokenizers` library."""

from __future__ import annotations

import json
import pickle
import sys

import pytest

from lit_video.data.tokenizer import (
    HuggingFacePretrainedTokenizer,
    WordTokenizer,
    load_tokenizer,
    normalize_caption,
    tokenizer_from_config,
)
from lit_video.errors import DatasetLayoutError, LitVideoError

CAPTIONS = ["A man is playing a guitar.", "a man plays the guitar", "A dog, running! It doesn't stop.",
            "the man's dog"]


def test_words_are_split_like_the_ptb_tokenizer():
    assert normalize_caption("A dog, running! It doesn't stop.") == ["a", "dog", "running", "it", "does", "n't",
                                                                      "stop"]
    assert normalize_caption("The man's GUITAR -- (red)") == ["the", "man", "'s", "guitar", "red"]
    assert normalize_caption("  ,.;  ") == []


def test_vocabulary_is_specials_then_most_frequent_words_ties_alphabetical():
    tokenizer = WordTokenizer.build(CAPTIONS)
    assert tokenizer.vocabulary[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]
    assert (tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id, tokenizer.unk_id) == (0, 1, 2, 3)
    # "a" 4 times, then "man" 3, then "dog" / "guitar" / "the" twice (alphabetical), then the singles
    assert tokenizer.vocabulary[4:9] == ["a", "man", "dog", "guitar", "the"]
    assert tokenizer.vocab_size == len(tokenizer.vocabulary) == 4 + len({w for c in CAPTIONS for w in normalize_caption(c)})
    assert WordTokenizer.build(CAPTIONS, max_size=6).vocabulary == ["<pad>", "<bos>", "<eos>", "<unk>", "a", "man"]


def test_min_count_turns_rare_words_into_unk():
    tokenizer = WordTokenizer.build(CAPTIONS, min_count=2)
    assert tokenizer.vocabulary[4:] == ["a", "man", "dog", "guitar", "the"]
    ids = tokenizer.encode("a man plays the banjo", max_len=10)
    assert ids == [1, 4, 5, 3, 8, 3, 2]
    assert tokenizer.decode(ids) == "a man <unk> the <unk>"


def test_encode_decode_round_trip_truncation_and_padding():
    tokenizer = WordTokenizer.build(CAPTIONS)
    ids = tokenizer.encode("A man is playing a guitar.", max_len=24)
    assert ids[0] == tokenizer.bos_id and ids[-1] == tokenizer.eos_id and len(ids) == 8
    assert tokenizer.decode(ids) == "a man is playing a guitar"
    short = tokenizer.encode("A man is playing a guitar.", max_len=4)
    assert len(short) == 4 and short[-1] == tokenizer.eos_id and tokenizer.decode(short) == "a man"
    # generated ids: no BOS, EOS then padding and junk after it
    generated = ids[1:] + [tokenizer.pad_id, tokenizer.vocabulary.index("dog")]
    assert tokenizer.decode(generated) == "a man is playing a guitar"
    assert tokenizer.decode([tokenizer.bos_id, tokenizer.pad_id, 4, tokenizer.pad_id]) == "a"
    with pytest.raises(ValueError, match="max_len"):
        tokenizer.encode("a man", max_len=1)


def test_config_is_json_and_rebuilds_the_same_tokenizer():
    tokenizer = WordTokenizer.build(CAPTIONS, min_count=2)
    config = json.loads(json.dumps(tokenizer.to_config()))
    rebuilt = tokenizer_from_config(config)
    assert isinstance(rebuilt, WordTokenizer) and rebuilt.vocabulary == tokenizer.vocabulary
    assert rebuilt.encode("the dog plays", 8) == tokenizer.encode("the dog plays", 8)
    with pytest.raises(LitVideoError, match="tokenizer config: expected"):
        tokenizer_from_config({"type": "sentencepiece"})


def test_vocabulary_file(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("<pad>\nman\r\n\ndog\n<eos>\n")
    tokenizer = load_tokenizer(path)
    assert isinstance(tokenizer, WordTokenizer)
    # the specials it lacks come first; the ones it has keep their place relative to the words
    assert tokenizer.vocabulary == ["<bos>", "<unk>", "<pad>", "man", "dog", "<eos>"]
    assert (tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id, tokenizer.unk_id) == (2, 0, 5, 1)
    assert tokenizer.encode("Man, dog! cat", 10) == [0, 3, 4, 1, 5]
    path.write_text("man\ndog\nman\n")
    with pytest.raises(DatasetLayoutError, match=r"vocab.txt:3: token 'man' is listed twice"):
        load_tokenizer(path)
    with pytest.raises(DatasetLayoutError, match="vocabulary file not found"):
        load_tokenizer(tmp_path / "none.txt")


def _train_hf(specials: list[str], model: str = "wordlevel"):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

    if model == "wordlevel":
        tok = Tokenizer(models.WordLevel(unk_token=specials[3]))
        trainer = trainers.WordLevelTrainer(special_tokens=specials)
    else:
        tok = Tokenizer(models.WordPiece(unk_token=specials[3]))
        trainer = trainers.WordPieceTrainer(special_tokens=specials, vocab_size=200)
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(CAPTIONS * 3, trainer)
    # a BERT-style template: the project's encode must not apply it (it adds its own BOS / EOS)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{specials[1]} $A {specials[2]}",
        special_tokens=[(specials[1], tok.token_to_id(specials[1])), (specials[2], tok.token_to_id(specials[2]))])
    return tok


def test_huggingface_tokenizer_json(tmp_path):
    path = tmp_path / "tokenizer.json"
    _train_hf(["[PAD]", "[CLS]", "[SEP]", "[UNK]"]).save(str(path))
    tokenizer = load_tokenizer(path)
    assert isinstance(tokenizer, HuggingFacePretrainedTokenizer)
    assert (tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id, tokenizer.unk_id) == (0, 1, 2, 3)
    ids = tokenizer.encode("A man plays the guitar", max_len=16)
    assert ids[0] == 1 and ids[-1] == 2 and len(ids) == 7 and 1 not in ids[1:] and 2 not in ids[:-1]
    assert tokenizer.decode(ids + [0, 0]) == "a man plays the guitar"
    assert tokenizer.decode(tokenizer.encode("a banjo", 8)) == "a [UNK]"
    assert tokenizer.encode("a man plays the guitar", max_len=4)[-1] == 2
    # the config carries the whole file: the tokenizer comes back without it
    config = json.loads(json.dumps(tokenizer.to_config()))
    path.unlink()
    rebuilt = tokenizer_from_config(config)
    assert rebuilt.encode("the man's dog", 12) == tokenizer.encode("the man's dog", 12)
    assert rebuilt.vocab_size == tokenizer.vocab_size
    # DataLoader workers receive it pickled
    assert pickle.loads(pickle.dumps(tokenizer)).encode("a dog", 8) == tokenizer.encode("a dog", 8)


def test_huggingface_special_token_conventions(tmp_path):
    path = tmp_path / "wordpiece.json"
    _train_hf(["<pad>", "<s>", "</s>", "<unk>"], model="wordpiece").save(str(path))
    tokenizer = HuggingFacePretrainedTokenizer.from_file(path)
    assert tokenizer.special_tokens == ("<pad>", "<s>", "</s>", "<unk>")
    ids = tokenizer.encode("a dog running", 16)
    assert ids[0] == tokenizer.bos_id and ids[-1] == tokenizer.eos_id
    # a vocabulary without any known special-token set is refused, naming the file
    from tokenizers import Tokenizer, models

    Tokenizer(models.WordLevel({"a": 0, "dog": 1, "[UNK]": 2}, unk_token="[UNK]")).save(str(path))
    with pytest.raises(DatasetLayoutError, match=r"wordpiece.json: the vocabulary lacks pad/bos/eos/unk") as info:
        load_tokenizer(path)
    assert "\n" not in str(info.value)
    path.write_text("{not json")
    with pytest.raises(DatasetLayoutError, match="wordpiece.json: not a tokenizers tokenizer.json"):
        load_tokenizer(path)


def test_missing_tokenizers_library_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tokenizers", None)  # makes `import tokenizers` fail
    with pytest.raises(LitVideoError, match="pip install tokenizers"):
        HuggingFacePretrainedTokenizer("{}", source="tok.json")
