"""Entities from the typed records: speakers, on-screen texts and keywords (tracks are vision's).

Ids are ``<kind>:<n>`` in order of first appearance (``speaker:<label>`` for speakers), so two
runs on the same input give the same ids.
"""

from __future__ import annotations

from collections.abc import Sequence

from video_extract.entities.keywords import extract_keywords
from video_extract.entities.spans import Spans, length, merge
from video_extract.results import DiarizationResult, Entity, Span, TimedText, Word


def spans_of(spans: Spans) -> list[Span]:
    return [Span(start=round(s, 4), end=round(e, 4)) for s, e in spans]


def speakers(diarization: DiarizationResult) -> list[Entity]:
    """One entity per speaker: its turns as spans, total speaking time, number of turns."""
    turns: dict[str, list[tuple[float, float]]] = {}
    for turn in sorted(diarization.segments, key=lambda t: t.start):
        turns.setdefault(turn.speaker, []).append((turn.start, turn.end))
    out = []
    for label, spoken in turns.items():
        merged = merge(spoken)
        out.append(
            Entity(
                id=f"speaker:{label}",
                kind="speaker",
                label=label,
                spans=spans_of(merged),
                evidence=["diarization"],
                seconds=round(length(merged), 4),
                turns=len(spoken),
            )
        )
    return out


def normalised(text: str) -> str:
    """What makes two on-screen texts the same one: case and spacing do not, nor spaces at all
    (OCR drops and inserts them between readings of one caption: "1024x 768" / "1024x768")."""
    return "".join(text.casefold().split())


def texts(timed: Sequence[TimedText], first_id: int = 0) -> list[Entity]:
    """One entity per distinct on-screen text (case and spacing normalised), over every scene it
    appears in; its label is the text as first read."""
    groups: dict[str, list[TimedText]] = {}
    for t in sorted(timed, key=lambda t: t.start):
        key = normalised(t.text)
        if key:
            groups.setdefault(key, []).append(t)
    out = []
    for n, seen in enumerate(groups.values()):
        merged = merge((t.start, t.end if t.end is not None else t.start) for t in seen)
        out.append(
            Entity(
                id=f"text:{first_id + n}",
                kind="text",
                label=seen[0].text,
                spans=spans_of(merged),
                evidence=["ocr"],
                seconds=round(length(merged), 4),
                confidence=round(max(t.confidence for t in seen), 4),
            )
        )
    return out


def keywords(
    words: Sequence[Word], transcript: str, text_entities: Sequence[Entity], language: str | None
) -> tuple[list[Entity], dict[str, tuple[Spans, list[str]]]]:
    """Keyword entities and, per keyword id, where it is said and the ids of the texts that hold
    it. A keyword's spans are the word times where it is said; for one that is only shown, the
    spans of the texts that hold it (where a said keyword is shown: its keyword_text links)."""
    found = extract_keywords(words, transcript, [t.label for t in text_entities], language)
    out, said_shown = [], {}
    for n, keyword in enumerate(found):
        holders = [text_entities[i] for i in keyword.shown_in]
        merged = keyword.said or merge((s.start, s.end) for t in holders for s in t.spans)
        entity_id = f"keyword:{n}"
        out.append(
            Entity(
                id=entity_id,
                kind="keyword",
                label=keyword.label,
                spans=spans_of(merged),
                evidence=(["transcription"] if keyword.said else []) + (["ocr"] if holders else []),
                seconds=round(length(merged), 4),
                score=keyword.score,
            )
        )
        said_shown[entity_id] = (keyword.said, [t.id for t in holders])
    return out, said_shown
