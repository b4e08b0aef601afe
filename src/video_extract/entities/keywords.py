"""Keywords of what is said and shown, with YAKE, and the times they are said and shown.

YAKE (unsupervised, statistical, no model to ship) ranks 1- to 3-word phrases of the
transcript and the on-screen texts together. Its score is lower for better keywords (unbounded
above); an entity's ``score`` is ``1 / (1 + yake_score)``: in (0, 1], higher = more relevant,
same order.

A keyword is said where its words follow one another in the transcript's words (their times),
and shown where an on-screen text holds those words in a row (that text's spans). OCR that
runs words together ("OPENTHEWINDOW") holds none of them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from video_extract.entities.spans import Spans, merge
from video_extract.results import Word

#: Keywords kept per input, the most relevant first.
TOP = 20
#: Longest keyword, in words.
MAX_WORDS = 3

_TOKEN = re.compile(r"\w+", re.UNICODE)


def tokens(text: str) -> list[str]:
    """Lower-case word tokens (punctuation and spacing do not matter when matching)."""
    return _TOKEN.findall(text.casefold())


@dataclass
class Keyword:
    label: str  # lower case
    score: float  # 1 / (1 + YAKE score)
    said: Spans = field(default_factory=list)  # word times where it is said
    shown_in: list[int] = field(default_factory=list)  # indices of the texts that hold it


def import_keywords():
    """YAKE, imported when there is text (0.1 s cold, most of it networkx)."""
    import yake

    return yake


def extract_keywords(words: Sequence[Word], transcript: str, texts: Sequence[str], language: str | None = None, top: int = TOP) -> list[Keyword]:
    """The ``top`` keywords of ``transcript`` and ``texts`` (on-screen texts) together, each with
    where it is said (``words``: the transcript's words with times) and which texts hold it."""
    document = "\n".join([transcript.strip(), *(t.strip() + "." for t in texts)]).strip()
    if not document:
        return []
    yake = import_keywords()
    extractor = yake.KeywordExtractor(lan=(language or "en").split("-")[0], n=MAX_WORDS, top=top * 2)
    word_tokens = [(t, w) for w in words for t in tokens(w.word)]
    text_tokens = [tokens(t) for t in texts]
    found: dict[str, Keyword] = {}
    for phrase, yake_score in extractor.extract_keywords(document):
        wanted = tokens(phrase)
        label = " ".join(wanted)
        if not wanted or label in found:
            continue
        said = merge(
            (word_tokens[i][1].start, word_tokens[i + len(wanted) - 1][1].end)
            for i in range(len(word_tokens) - len(wanted) + 1)
            if [t for t, _ in word_tokens[i : i + len(wanted)]] == wanted
        )
        shown_in = [n for n, held in enumerate(text_tokens) if _holds(held, wanted)]
        if said or shown_in:
            found[label] = Keyword(label=label, score=round(1.0 / (1.0 + float(yake_score)), 4), said=said, shown_in=shown_in)
        if len(found) == top:
            break
    return list(found.values())


def _holds(held: list[str], wanted: list[str]) -> bool:
    return any(held[i : i + len(wanted)] == wanted for i in range(len(held) - len(wanted) + 1))
