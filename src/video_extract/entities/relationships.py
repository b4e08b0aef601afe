"""Relationships between entities: who and what are on screen together, which face a speaker
has, which keywords are said and shown, and which scenes an entity is in.

Scores are in [0, 1] and say how much of something the relationship explains:

- ``co_occurs`` (per scene): seconds the two are there together / the shorter one's seconds in
  that scene. Between speakers, faces, objects and texts (keywords are instants: their scenes say
  enough), kept at ``CO_OCCUR_MIN_SECONDS`` of overlap and ``CO_OCCUR_MIN_SCORE``, at most
  ``CO_OCCUR_MAX`` (the highest scores) per input.
- ``speaker_face``: over all the speaker's turns, the share of its speaking time the face track is
  on screen (kept from ``SPEAKER_FACE_MIN_SCORE``). A single-face interview links every speaker
  to that face; with faces shown in turn, each speaker's top score is its own face.
- ``keyword_text``: a keyword that is said and held by an on-screen text: 0.5 when it is said and
  shown at different times, up to 1 when every time it is said the text is on screen.
- ``in_scene`` (target ``scene:<n>``): the share of the scene the entity covers.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence

from video_extract.entities.extract import spans_of
from video_extract.entities.spans import Spans, clip, intersect, length, merge
from video_extract.results import Entity, Relationship

CO_OCCUR_KINDS = ("speaker", "face", "object", "text")
CO_OCCUR_MIN_SECONDS = 0.5
CO_OCCUR_MIN_SCORE = 0.1
CO_OCCUR_MAX = 5000
SPEAKER_FACE_MIN_SCORE = 0.05


def _spans(entity: Entity) -> Spans:
    return [(s.start, s.end) for s in entity.spans]


def build_relationships(
    entities: Sequence[Entity], scenes: Sequence[tuple[float, float]], keyword_links: Mapping[str, tuple[Spans, list[str]]]
) -> list[Relationship]:
    """Every relationship among ``entities``; ``scenes``: (start, end) of each scene (none: the
    input is one scene and ``in_scene`` is left out); ``keyword_links``: per keyword id, where it
    is said and the ids of the texts that hold it."""
    by_id = {e.id: e for e in entities}
    out = co_occurrences(entities, scenes)
    out += speaker_faces([e for e in entities if e.kind == "speaker"], [e for e in entities if e.kind == "face"])
    for keyword_id, (said, text_ids) in keyword_links.items():
        if not said:
            continue
        for text_id in text_ids:
            shown = _spans(by_id[text_id])
            while_shown = sum(1 for s, e in said if intersect([(s, e)], shown) or any(a <= s <= b for a, b in shown))
            out.append(
                Relationship(
                    type="keyword_text",
                    source=keyword_id,
                    target=text_id,
                    score=round(0.5 + 0.5 * while_shown / len(said), 4),
                    spans=spans_of(merge([*said, *shown])),
                )
            )
    ends = [end for _, end in scenes]
    memberships: list[tuple[int, int, Relationship]] = []  # (scene, entity's place, relationship)
    for index, entity in enumerate(entities):
        for n, inside in _per_scene(_spans(entity), scenes, ends).items():
            start, end = scenes[n]
            share = length(inside) / (end - start) if end > start else 1.0
            rel = Relationship(type="in_scene", source=entity.id, target=f"scene:{n}", score=round(min(1.0, share), 4), spans=spans_of(inside))
            memberships.append((n, index, rel))
    return out + [rel for _, _, rel in sorted(memberships, key=lambda m: m[:2])]


def _per_scene(spans: Spans, scenes: Sequence[tuple[float, float]], ends: Sequence[float]) -> dict[int, Spans]:
    """Merged ``spans`` cut at the scenes they cross (``ends``: each scene's end): scene index ->
    the parts inside it; a bisection per span, not a pass over every scene per entity."""
    out: dict[int, Spans] = {}
    for s, e in spans:
        n = bisect.bisect_right(ends, s)  # the first scene that ends after s
        while n < len(scenes) and (scenes[n][0] < e or (s == e and scenes[n][0] <= s)):
            part = clip([(s, e)], *scenes[n])
            if part:
                out.setdefault(n, []).extend(part)
            n += 1
    return out


def co_occurrences(entities: Sequence[Entity], scenes: Sequence[tuple[float, float]]) -> list[Relationship]:
    """Pairs of different entities there at the same time, one relationship per pair and scene.

    A sweep over the spans in start order: each span meets only the spans still open, so a long
    input with many short tracks stays near-linear."""
    chosen = [e for e in entities if e.kind in CO_OCCUR_KINDS]
    found: list[tuple[float, int, int, int, Spans]] = []  # (score, order, entity, entity, together)
    scenes = scenes or [(float("-inf"), float("inf"))]
    ends = [end for _, end in scenes]
    scene_parts: dict[int, dict[int, Spans]] = {}  # scene -> entity -> its spans there
    for i, entity in enumerate(chosen):
        for n, parts in _per_scene(_spans(entity), scenes, ends).items():
            scene_parts.setdefault(n, {})[i] = parts
    for n in sorted(scene_parts):
        inside = scene_parts[n]
        events = sorted((s, e, i) for i, spans in inside.items() for s, e in spans)
        open_spans: list[tuple[float, float, int]] = []
        overlaps: dict[tuple[int, int], Spans] = {}
        for s, e, i in events:
            open_spans = [o for o in open_spans if o[1] > s]
            for os_, oe, j in open_spans:
                if j != i and min(e, oe) > max(s, os_):
                    overlaps.setdefault((min(i, j), max(i, j)), []).append((max(s, os_), min(e, oe)))
            open_spans.append((s, e, i))
        for (i, j), spans in overlaps.items():
            together = merge(spans)
            seconds = length(together)
            shorter = min(length(inside[i]), length(inside[j]))
            score = seconds / shorter if shorter > 0 else 0.0
            if seconds >= CO_OCCUR_MIN_SECONDS and score >= CO_OCCUR_MIN_SCORE:
                found.append((score, len(found), i, j, together))
    if len(found) > CO_OCCUR_MAX:  # the strongest, kept in scene order
        found = sorted(sorted(found, key=lambda f: -f[0])[:CO_OCCUR_MAX], key=lambda f: f[1])
    return [
        Relationship(type="co_occurs", source=chosen[i].id, target=chosen[j].id, score=round(min(1.0, score), 4), spans=spans_of(together))
        for score, _, i, j, together in found
    ]


def speaker_faces(speakers: Sequence[Entity], faces: Sequence[Entity]) -> list[Relationship]:
    """For each speaker, each face track on screen while it speaks, by share of its speaking time."""
    out = []
    for speaker in speakers:
        talking = _spans(speaker)
        total = length(talking)
        if total <= 0:
            continue
        for face in faces:
            together = intersect(talking, _spans(face))
            share = length(together) / total
            if share >= SPEAKER_FACE_MIN_SCORE:
                out.append(Relationship(type="speaker_face", source=speaker.id, target=face.id, score=round(min(1.0, share), 4), spans=spans_of(together)))
    return out
