"""Who said each word: transcript words matched to diarization turns by time overlap."""

from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate

from video_extract.results import SpeakerTurn, TranscriptSegment
from video_extract.speech.words import join_spelled, spelled_words


def _speaker_at(turns: list[SpeakerTurn], reach: list[float], start: float, end: float) -> str | None:
    """The speaker whose turns overlap [start, end] most; the nearest turn when none overlaps.

    ``reach[i]`` is the latest end among turns[:i + 1]: diarization turns may overlap (two people
    talking at once), so a long turn that started earlier can still cover [start, end].
    """
    if not turns:
        return None
    best, best_overlap = None, 0.0
    i = bisect_right(reach, start)
    while i < len(turns) and turns[i].start <= end:
        overlap = min(end, turns[i].end) - max(start, turns[i].start)
        if overlap > best_overlap:
            best, best_overlap = turns[i].speaker, overlap
        i += 1
    if best is not None:
        return best
    middle = (start + end) / 2
    nearest = min(turns, key=lambda t: 0.0 if t.start <= middle <= t.end else min(abs(t.start - middle), abs(t.end - middle)))
    return nearest.speaker


def attribute_speakers(segments: list[TranscriptSegment], turns: list[SpeakerTurn]) -> list[TranscriptSegment]:
    """Give every word and segment a ``speaker``; split a segment where its words change speaker.

    A split segment's text is the slice of the original text its words cover, so spelling and
    punctuation stay exactly as Whisper wrote them."""
    turns = sorted(turns, key=lambda t: t.start)
    reach = list(accumulate((t.end for t in turns), max))
    out: list[TranscriptSegment] = []
    for seg in segments:
        if not seg.words:
            out.append(seg.model_copy(update={"speaker": _speaker_at(turns, reach, seg.start, seg.end)}))
            continue
        words = [w.model_copy(update={"speaker": _speaker_at(turns, reach, w.start, w.end)}) for w in seg.words]
        pieces = spelled_words(seg)
        runs: list[list[int]] = []
        for i, word in enumerate(words):
            if runs and words[runs[-1][-1]].speaker == word.speaker:
                runs[-1].append(i)
            else:
                runs.append([i])
        if len(runs) == 1:
            out.append(seg.model_copy(update={"speaker": words[0].speaker, "words": words}))
            continue
        for run in runs:
            first, last = run[0], run[-1]
            out.append(
                seg.model_copy(
                    update={
                        "start": words[first].start,
                        "end": words[last].end,
                        "text": join_spelled(pieces[first : last + 1]),
                        "speaker": words[first].speaker,
                        "words": words[first : last + 1],
                    }
                )
            )
    return out
