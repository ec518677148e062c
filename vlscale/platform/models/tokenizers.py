"""Tokenizers: open_clip's BPE for real captions, a small word-level one for synthetic captions.

Both return `int64` numpy arrays of shape [batch, context_length] (Ray Data's `map_batches` can
carry numpy but not strings into `iter_torch_batches`). Padding is id 0 in both, so the caption
loss can ignore id 0 whatever the tokenizer.

Why a word-level tokenizer: the synthetic caption vocabulary has a few hundred words; a 49k-token
vocabulary head would dominate a tiny MaMMUT's compute and distort the CLIP/MaMMUT comparison.

CLIP's text embedding is the state at the end token, and the text tower is causal, so pooling
anywhere else drops the words after that position. open_clip finds it by `argmax(token id)`,
right for its BPE (the end token is the highest id) but not for the word tokenizer (end id 2):
there it pooled at the caption's highest-id word. `clip_text_pooling` gives the open_clip text
config keys that pool at each tokenizer's end token; `check_text_pooling` refuses a pairing that
pools elsewhere.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from vlscale.errors import UserError

PAD_ID, SOT_ID, EOT_ID, UNK_ID = 0, 1, 2, 3
WORD_SPECIAL_TOKENS = ("<pad>", "<sot>", "<eot>", "<unk>")
_WORD_PATTERN = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def split_words(text: str) -> list[str]:
    """Lower-case words (hyphenated words such as "t-shirt" stay whole); punctuation dropped."""
    return _WORD_PATTERN.findall(text.lower())


class WordTokenizer:
    """Word-level tokenizer over a fixed vocabulary; unknown words map to `<unk>`.

    Ids: 0 pad, 1 start, 2 end, 3 unknown, then the vocabulary in the given order.
    """

    kind = "words"

    def __init__(self, vocabulary: Sequence[str], context_length: int) -> None:
        words = list(dict.fromkeys(w.lower() for w in vocabulary))
        if context_length < 3:
            raise UserError(f"context_length must be at least 3, got {context_length}")
        self.vocabulary = words
        self.context_length = context_length
        self._ids = {word: index + len(WORD_SPECIAL_TOKENS) for index, word in enumerate(words)}

    @property
    def vocab_size(self) -> int:
        return len(self._ids) + len(WORD_SPECIAL_TOKENS)

    @property
    def eot_id(self) -> int:
        return EOT_ID

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        tokens = np.full((len(texts), self.context_length), PAD_ID, dtype=np.int64)
        for row, text in enumerate(texts):
            ids = [self._ids.get(word, UNK_ID) for word in split_words(text)]
            ids = [SOT_ID, *ids[: self.context_length - 2], EOT_ID]
            tokens[row, : len(ids)] = ids
        return tokens

    def decode(self, ids: Sequence[int]) -> str:
        names = [*WORD_SPECIAL_TOKENS, *self.vocabulary]
        return " ".join(names[i] for i in ids if i not in (PAD_ID, SOT_ID, EOT_ID))


class BpeTokenizer:
    """open_clip's `SimpleTokenizer` (its BPE vocabulary ships with the package; no download)."""

    kind = "bpe"

    def __init__(self, context_length: int = 77) -> None:
        from open_clip.tokenizer import SimpleTokenizer

        self._tokenizer = SimpleTokenizer(context_length=context_length)
        self.context_length = context_length

    @property
    def vocab_size(self) -> int:
        return len(self._tokenizer.encoder)

    @property
    def eot_id(self) -> int:
        return self._tokenizer.eot_token_id

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        return self._tokenizer(list(texts), context_length=self.context_length).numpy().astype(np.int64)

    def decode(self, ids: Sequence[int]) -> str:
        return self._tokenizer.decode([i for i in ids if i != PAD_ID])


Tokenizer = WordTokenizer | BpeTokenizer


def build_tokenizer(kind: str, context_length: int,
                    vocabulary: Sequence[str] | None = None,
                    vocab_size: int | None = None) -> Tokenizer:
    """A tokenizer by kind: "bpe", or "words" with the dataset's vocabulary (from dataset.json).

    `vocab_size`: the model's token-embedding size (`ModelProfile.vocab_size`); a tokenizer with
    more ids than that is refused, since its ids would index past the embedding.
    """
    if kind == "bpe":
        tokenizer: Tokenizer = BpeTokenizer(context_length)
    elif kind == "words":
        if not vocabulary:
            raise UserError("the word tokenizer needs a vocabulary: write the shards with "
                            "`vlscale data synth|fashion`, which record it in dataset.json")
        tokenizer = WordTokenizer(vocabulary, context_length)
    else:
        raise UserError(f"unknown tokenizer {kind!r}; use 'bpe' or 'words'")
    if vocab_size is not None and tokenizer.vocab_size > vocab_size:
        fix = (f"use a dataset vocabulary of at most {vocab_size - len(WORD_SPECIAL_TOKENS)} words"
               if kind == "words" else "use a model of the paper ladder (49408 ids)")
        raise UserError(f"the {kind} tokenizer has {tokenizer.vocab_size} ids but the model's "
                        f"vocabulary holds {vocab_size}; {fix}")
    return tokenizer


TOKENIZER_KINDS: tuple[str, ...] = ("bpe", "words")


def clip_text_pooling(kind: str) -> dict[str, object]:
    """open_clip `CLIPTextCfg` keys that pool CLIP's text tower at the end token of `kind`.

    BPE keeps open_clip's default ("argmax": its end token 49407 is the highest id), so paper-ladder
    CLIPs are exactly open_clip's; the word tokenizer pools at the first `EOT_ID` ("eos").
    """
    if kind == "bpe":
        return {"pool_type": "argmax"}
    if kind == "words":
        return {"pool_type": "eos", "eos_id": EOT_ID}
    raise UserError(f"unknown tokenizer {kind!r}; use one of {', '.join(TOKENIZER_KINDS)}")


def check_text_pooling(pool_type: str, eos_id: int | None, tokenizer: Tokenizer) -> None:
    """Raise ValueError unless a CLIP text tower pooled by (`pool_type`, `eos_id`) reads
    `tokenizer`'s captions at their end token."""
    if pool_type == "eos" and eos_id == tokenizer.eot_id:
        return
    if pool_type == "argmax" and tokenizer.eot_id == tokenizer.vocab_size - 1:
        return
    raise ValueError(
        f"CLIP text pooling {pool_type!r} (eos_id {eos_id}) does not pool at the end token "
        f"{tokenizer.eot_id} of the {tokenizer.kind} tokenizer: the text embedding would ignore "
        f"part of every caption; use the pooling of `clip_text_pooling({tokenizer.kind!r})`")
