"""Time spans as sorted lists of (start, end) in seconds: union, length, intersection, cuts."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

Spans = list[tuple[float, float]]


def merge(spans: Iterable[tuple[float, float]]) -> Spans:
    """Sorted, non-overlapping spans covering the same time (touching spans join)."""
    out: Spans = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def length(spans: Sequence[tuple[float, float]]) -> float:
    """Seconds covered by merged spans."""
    return sum(end - start for start, end in spans)


def intersect(a: Sequence[tuple[float, float]], b: Sequence[tuple[float, float]]) -> Spans:
    """Where two merged span lists overlap (for more than an instant)."""
    out: Spans = []
    i = j = 0
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if end > start:
            out.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def clip(spans: Sequence[tuple[float, float]], start: float, end: float) -> Spans:
    """The parts of merged spans inside [start, end); an instant (start == end) inside counts."""
    return [(max(s, start), min(e, end)) for s, e in spans if (s < end and e > start) or (s == e and start <= s < end)]
