"""Who said each word: transcript words matched to diarization turns by time overlap."""

from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate

from video_extract.results import SpeakerTurn, TranscriptSegment


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
    """Give every word and segment a ``speaker``; split a segment where its words change speaker."""
    turns = sorted(turns, key=lambda t: t.start)
    reach = list(accumulate((t.end for t in turns), max))
    out: list[TranscriptSegment] = []
    for seg in segments:
        if not seg.words:
            out.append(seg.model_copy(update={"speaker": _speaker_at(turns, reach, seg.start, seg.end)}))
            continue
        words = [w.model_copy(update={"speaker": _speaker_at(turns, reach, w.start, w.end)}) for w in seg.words]
        runs: list[list] = []
        for word in words:
            if runs and runs[-1][-1].speaker == word.speaker:
                runs[-1].append(word)
            else:
                runs.append([word])
        for run in runs:
            out.append(
                seg.model_copy(
                    update={
                        "start": run[0].start,
                        "end": run[-1].end,
                        "text": " ".join(w.word for w in run).strip(),
                        "speaker": run[0].speaker,
                        "words": run,
                    }
                )
            )
    return out
