"""Caption tokenizers: captions <-> token ids with BOS / EOS / padding, rebuilt exactly from a config.

Two kinds:
- `WordTokenizer`: one id per word of the training captions, words split the way the caption metrics'
  PTB tokenizer splits them (lowercase, punctuation split off and dropped, "n't" and "'s" apart), so
  the model predicts the very tokens BLEU / CIDEr count.
- `HuggingFacePretrainedTokenizer`: a user's `tokenizer.json` of the `tokenizers` library (WordPiece,
  BPE, WordLevel, ...), for subword vocabularies shared with a pretrained text model.

Both store everything in `to_config()` (a JSON-serialisable dict), which a checkpoint keeps so that a
model is decoded with the vocabulary it was trained with, whatever files are around later.
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from lit_video.data.records import read_text_file
from lit_video.errors import DatasetLayoutError, LitVideoError

SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
# (pad, bos, eos, unk) names that a tokenizer.json may use, in the order they are looked for
HF_SPECIALS = (("[PAD]", "[CLS]", "[SEP]", "[UNK]"), ("<pad>", "<s>", "</s>", "<unk>"), SPECIALS)

# PTB-style pieces: "don't" -> "do" "n't", "man's" -> "man" "'s", every other punctuation mark alone
_PIECES = re.compile(r"\w+(?=n't\b)|n't\b|'\w+|\w+|[^\w\s]")


def normalize_caption(caption: str) -> list[str]:
    """Words of a caption as the PTB tokenizer of the metrics sees them: lowercase, no punctuation.

    Args:
        caption: raw caption text.
    """
    return [piece for piece in _PIECES.findall(caption.lower()) if re.search(r"\w", piece)]


def _check_max_len(max_len: int) -> None:
    if max_len < 2:
        raise ValueError(f"max_len must leave room for BOS and EOS (at least 2), got {max_len}")


class CaptionTokenizer(ABC):
    """What a captioning model and DataModule need of a tokenizer.

    Attributes:
        pad_id, bos_id, eos_id, unk_id: ids of the special tokens.
        vocab_size: number of ids (the model's output size).
    """

    pad_id: int
    bos_id: int
    eos_id: int
    unk_id: int
    vocab_size: int

    @abstractmethod
    def _ids(self, caption: str) -> list[int]:
        """Ids of the caption's tokens, without specials."""

    @abstractmethod
    def _text(self, ids: list[int]) -> str:
        """Text of ids that hold no pad / bos / eos."""

    @abstractmethod
    def to_config(self) -> dict:
        """A JSON-serialisable dict from which `tokenizer_from_config` rebuilds this tokenizer exactly."""

    def encode(self, caption: str, max_len: int) -> list[int]:
        """[bos, ids..., eos], at most `max_len` ids: trailing tokens are cut, EOS always kept.

        Args:
            caption: raw caption text.
            max_len: most ids returned, BOS and EOS included (at least 2).
        """
        _check_max_len(max_len)
        return [self.bos_id, *self._ids(caption)[: max_len - 2], self.eos_id]

    def decode(self, ids: Sequence[int]) -> str:
        """Text of generated ids: stops at the first EOS, drops padding and BOS.

        Args:
            ids: token ids, with or without a leading BOS.
        """
        kept = []
        for token in (int(i) for i in ids):
            if token == self.eos_id:
                break
            if token not in (self.pad_id, self.bos_id):
                kept.append(token)
        return self._text(kept)


class WordTokenizer(CaptionTokenizer):
    """One id per word; unknown words map to <unk>.

    Args:
        vocabulary: tokens in id order; must hold the four specials <pad>, <bos>, <eos>, <unk>.
    """

    def __init__(self, vocabulary: Sequence[str]):
        self.vocabulary = list(vocabulary)
        self.index = {token: i for i, token in enumerate(self.vocabulary)}
        if len(self.index) != len(self.vocabulary):
            twice = next(t for t, n in Counter(self.vocabulary).items() if n > 1)
            raise LitVideoError(f"tokenizer vocabulary: token {twice!r} is listed twice")
        missing = [s for s in SPECIALS if s not in self.index]
        if missing:
            raise LitVideoError(f"tokenizer vocabulary: missing special token(s) {', '.join(missing)}")
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = (self.index[s] for s in SPECIALS)
        self.vocab_size = len(self.vocabulary)

    @classmethod
    def build(cls, captions: Iterable[str], min_count: int = 1, max_size: int | None = None) -> WordTokenizer:
        """Vocabulary of the words of `captions`: most frequent first, ties alphabetical.

        Args:
            captions: the training captions (raw text).
            min_count: words seen fewer times become <unk>.
            max_size: most ids in all, the four specials included; None keeps every word.
        """
        counts = Counter(word for caption in captions for word in normalize_caption(caption))
        words = sorted((w for w, n in counts.items() if n >= min_count and w not in SPECIALS),
                       key=lambda w: (-counts[w], w))
        if max_size is not None:
            words = words[: max(max_size - len(SPECIALS), 0)]
        return cls([*SPECIALS, *words])

    @classmethod
    def from_vocabulary_file(cls, path: str | os.PathLike) -> WordTokenizer:
        """A vocabulary file, one token a line in id order; specials it lacks are put first.

        Raises:
            DatasetLayoutError: the file is missing or lists a token twice.
        """
        path = Path(path)
        if not path.is_file():
            raise DatasetLayoutError(f"{path}: tokenizer vocabulary file not found")
        tokens: list[str] = []
        seen: set[str] = set()
        for number, line in enumerate(read_text_file(path).splitlines(), start=1):
            token = line.strip()
            if not token:
                continue
            if token in seen:
                raise DatasetLayoutError(f"{path}:{number}: token {token!r} is listed twice")
            seen.add(token)
            tokens.append(token)
        return cls([*(s for s in SPECIALS if s not in seen), *tokens])

    def _ids(self, caption: str) -> list[int]:
        return [self.index.get(word, self.unk_id) for word in normalize_caption(caption)]

    def _text(self, ids: list[int]) -> str:
        return " ".join(self.vocabulary[i] if 0 <= i < self.vocab_size else SPECIALS[3] for i in ids)

    def to_config(self) -> dict:
        return {"type": "word", "vocabulary": list(self.vocabulary)}


class HuggingFacePretrainedTokenizer(CaptionTokenizer):
    """A `tokenizers` library tokenizer (`tokenizer.json`); BOS / EOS are its CLS / SEP or <s> / </s>.

    Captions are encoded without the library's own post-processing (no [CLS] ... [SEP] template), then
    wrapped in this tokenizer's BOS / EOS, the same for every kind of tokenizer.json.

    Args:
        json_text: the content of a tokenizer.json.
        source: where it came from, named in errors.
    """

    def __init__(self, json_text: str, source: str = "tokenizer.json"):
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise LitVideoError(f"{source}: reading a tokenizer.json needs the tokenizers library "
                                "(pip install tokenizers)") from None
        try:
            self.backend = Tokenizer.from_str(json_text)
        except Exception as err:  # the library raises plain Exceptions for malformed files
            raise DatasetLayoutError(f"{source}: not a tokenizers tokenizer.json ({str(err).splitlines()[0]})") from None
        self.json_text, self.source = json_text, source
        for names in HF_SPECIALS:
            ids = [self.backend.token_to_id(name) for name in names]
            if all(i is not None for i in ids):
                self.special_tokens = names
                self.pad_id, self.bos_id, self.eos_id, self.unk_id = ids
                break
        else:
            options = " or ".join("(" + ", ".join(names) + ")" for names in HF_SPECIALS)
            raise DatasetLayoutError(f"{source}: the vocabulary lacks pad/bos/eos/unk tokens; expected {options}")
        self.vocab_size = self.backend.get_vocab_size(with_added_tokens=True)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> HuggingFacePretrainedTokenizer:
        path = Path(path)
        if not path.is_file():
            raise DatasetLayoutError(f"{path}: tokenizer.json not found")
        return cls(read_text_file(path), source=str(path))

    def _ids(self, caption: str) -> list[int]:
        return list(self.backend.encode(caption, add_special_tokens=False).ids)

    def _text(self, ids: list[int]) -> str:
        # <unk> stays visible: dropping it would make a wrong caption look shorter, not wrong
        return self.backend.decode(ids, skip_special_tokens=False)

    def to_config(self) -> dict:
        return {"type": "huggingface", "json": self.json_text}

    def __getstate__(self) -> dict:
        # DataLoader workers get the JSON text, not the Rust object
        return {"json_text": self.json_text, "source": self.source}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["json_text"], state["source"])


def tokenizer_from_config(config: dict) -> CaptionTokenizer:
    """Rebuild a tokenizer from its `to_config()` dict (as a checkpoint stores it).

    Raises:
        LitVideoError: the dict is not a tokenizer config.
    """
    kind = config.get("type") if isinstance(config, dict) else None
    if kind == "word" and isinstance(config.get("vocabulary"), list):
        return WordTokenizer(config["vocabulary"])
    if kind == "huggingface" and isinstance(config.get("json"), str):
        return HuggingFacePretrainedTokenizer(config["json"], source="tokenizer config")
    raise LitVideoError(f"tokenizer config: expected {{'type': 'word', 'vocabulary': [...]}} or "
                        f"{{'type': 'huggingface', 'json': '...'}}, got type {kind!r}")


def load_tokenizer(path: str | os.PathLike) -> CaptionTokenizer:
    """A `.json` file -> HuggingFacePretrainedTokenizer; anything else -> a vocabulary file (one token a line).

    Args:
        path: the tokenizer file.
    """
    if str(path).lower().endswith(".json"):
        return HuggingFacePretrainedTokenizer.from_file(path)
    return WordTokenizer.from_vocabulary_file(path)
