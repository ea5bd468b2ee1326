"""Train/evaluation overlap: exact, shared 8-gram, and near-duplicate (content-word Jaccard).

An evaluation prompt that also appears, or nearly appears, in training measures memory, not
behaviour. Two lexical tests catch most leaks cheaply: a shared run of 8 words, and a high overlap of
content words (which also catches light rewordings such as a changed tense or word order).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

NGRAM = 8
JACCARD = 0.7
MIN_CONTENT_WORDS = 4

_STOPWORDS = frozenset(
    "a an the and or but if of to in on at by for with from as is are was were be been being do does "
    "did have has had i you he she it we they me my your our their his her its this that these those "
    "what which who whom how why when where can could would should will shall may might must not no "
    "so than then there here into out up down about over under again some any all each more most "
    "other such only own same too very just also please tell give write make get".split()
)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower().replace("\u2019", "'"))


def ngrams(text: str, n: int = NGRAM) -> set[tuple[str, ...]]:
    tokens = words(text)
    return {tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)}


def content_words(text: str) -> frozenset[str]:
    # crude stemming (plural/past/gerund endings) so "made"/"making" style variants still overlap
    return frozenset(re.sub(r"(ing|ed|es|s)$", "", w) for w in words(text) if w not in _STOPWORDS)


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


@dataclass(frozen=True)
class Overlap:
    train_text: str
    eval_text: str
    reason: str  # "exact" | "8-gram" | "jaccard=0.83"


class OverlapIndex:
    """Index of evaluation texts; ask it whether a training text leaks into any of them."""

    def __init__(self, eval_texts: Iterable[str]) -> None:
        self.texts = list(eval_texts)
        self.exact = {" ".join(words(t)): t for t in self.texts}
        self.grams: dict[tuple[str, ...], str] = {}
        self.by_word: dict[str, list[int]] = {}
        self.content = [content_words(t) for t in self.texts]
        for i, text in enumerate(self.texts):
            for gram in ngrams(text):
                self.grams.setdefault(gram, text)
            for word in self.content[i]:
                self.by_word.setdefault(word, []).append(i)

    def find(self, text: str) -> Overlap | None:
        norm = " ".join(words(text))
        if norm in self.exact:
            return Overlap(text, self.exact[norm], "exact")
        for gram in ngrams(text):
            if gram in self.grams:
                return Overlap(text, self.grams[gram], f"{NGRAM}-gram")
        mine = content_words(text)
        if len(mine) < MIN_CONTENT_WORDS:
            return None
        candidates = {i for w in mine for i in self.by_word.get(w, ())}
        best = max(candidates, key=lambda i: jaccard(mine, self.content[i]), default=None)
        if best is not None and len(self.content[best]) >= MIN_CONTENT_WORDS:
            score = jaccard(mine, self.content[best])
            if score >= JACCARD:
                return Overlap(text, self.texts[best], f"jaccard={score:.2f}")
        return None


def overlaps(train_texts: Iterable[str], eval_texts: Iterable[str]) -> list[Overlap]:
    """Every training text that duplicates or nearly duplicates an evaluation text."""
    index = OverlapIndex(eval_texts)
    return [hit for text in train_texts if (hit := index.find(text))]
