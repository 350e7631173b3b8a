"""Why the model decided: the words of a text that most moved it toward its label (and toward the runner-up).

Method: word occlusion, computed by the served model itself. Every word (a run of wordpieces with no space
between them, e.g. "hasn't" or "card?") is deleted in turn, and the text without it is scored; a word's
weight for a label is how much that label's probability drops without it. Because deleting a word also
deletes its n-grams, the in-graph sparse n-gram head's contribution is part of the weight, and the encoder's
is measured the only way a black box allows. The variants of one text run the way the engine runs any texts
(each alone, or those of one token length together, never padded), so each variant's probabilities are the ones
it would get classified on its own, and the explanation of a text is always the same (the prediction itself
still comes from the text's own forward pass). docs/model.md, "Explanations", has the faithfulness figures.
"""

from __future__ import annotations

import string
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tokenizers import Encoding

MAX_SPANS = 5
_TRIM = string.punctuation + "\u201c\u201d\u2018\u2019\u00ab\u00bb\u00bf\u00a1\u2026"  # quotes, guillemets, ¿ ¡ …


@dataclass(frozen=True)
class Span:
    text: str  # an exact substring of the text as submitted
    weight: float  # drop of the label's probability when the word is deleted (> 0: it supported the label)


@dataclass(frozen=True)
class Explanation:
    label: str
    spans: list[Span]
    runner_up: str | None
    runner_up_spans: list[Span]


@dataclass(frozen=True)
class Word:
    start: int  # character offsets in the normalised text
    end: int
    positions: tuple[int, ...]  # token positions in the encoding


def words_of(encoding: Encoding) -> list[Word]:
    """Runs of non-special tokens with touching character offsets (what a reader calls a word)."""
    words: list[Word] = []
    for position, (word_id, (start, end)) in enumerate(zip(encoding.word_ids, encoding.offsets, strict=True)):
        if word_id is None or start == end:
            continue
        if words and words[-1].end == start:
            last = words[-1]
            words[-1] = Word(last.start, end, (*last.positions, position))
        else:
            words.append(Word(start, end, (position,)))
    return words


def occluded_ids(ids: Sequence[int], words: Sequence[Word]) -> list[list[int]]:
    """One id list per word: the text's ids without that word's tokens."""
    ids = list(ids)  # a word's tokens are contiguous (words_of): cut out one slice
    return [ids[: word.positions[0]] + ids[word.positions[-1] + 1 :] for word in words]


def locate(original: str, normalised: str, start: int, end: int) -> str | None:
    """The submitted text's substring for normalised[start:end], trimmed of punctuation at its ends."""
    piece = normalised[start:end].strip(_TRIM) or normalised[start:end]
    offset = len(original) - len(original.lstrip())
    if unicodedata.normalize("NFC", original.strip()) == original.strip():  # the engine only stripped
        begin = offset + start + normalised[start:end].find(piece)
        candidate = original[begin : begin + len(piece)]
        if candidate == piece:
            return candidate
    for form in (piece, unicodedata.normalize("NFD", piece)):  # NFC changed something: find it
        if form in original:
            return form
    return None


def top_spans(weights: np.ndarray, texts: Sequence[str | None]) -> list[Span]:
    """The words that supported the label (weight > 0), strongest first, at most MAX_SPANS, one per text."""
    spans: list[Span] = []
    seen: set[str] = set()
    for index in np.argsort(-weights, kind="stable"):
        text = texts[index]
        if weights[index] <= 0 or len(spans) == MAX_SPANS:
            break
        if text and text not in seen:
            seen.add(text)
            spans.append(Span(text, round(float(weights[index]), 6)))
    return spans
