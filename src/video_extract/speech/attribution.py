"""Who said each word: transcript words matched to diarization turns by time overlap."""

from __future__ import annotations

from bisect import bisect_right


def _speaker_at(turns: list[dict], starts: list[float], start: float, end: float) -> str | None:
    """The speaker whose turns overlap [start, end] most; the nearest turn when none overlaps."""
    if not turns:
        return None
    best, best_overlap = None, 0.0
    i = max(0, bisect_right(starts, start) - 1)
    while i < len(turns) and turns[i]["start"] <= end:
        overlap = min(end, turns[i]["end"]) - max(start, turns[i]["start"])
        if overlap > best_overlap:
            best, best_overlap = turns[i]["speaker"], overlap
        i += 1
    if best is not None:
        return best
    middle = (start + end) / 2
    nearest = min(turns, key=lambda t: 0.0 if t["start"] <= middle <= t["end"] else min(abs(t["start"] - middle), abs(t["end"] - middle)))
    return nearest["speaker"]


def attribute_speakers(segments: list[dict], turns: list[dict]) -> list[dict]:
    """Give every word and segment a ``speaker``; split a segment where its words change speaker."""
    turns = sorted(turns, key=lambda t: t["start"])
    starts = [t["start"] for t in turns]
    out: list[dict] = []
    for seg in segments:
        words = seg.get("words") or []
        if not words:
            out.append({**seg, "speaker": _speaker_at(turns, starts, seg["start"], seg["end"])})
            continue
        for word in words:
            word["speaker"] = _speaker_at(turns, starts, word["start"], word["end"])
        runs: list[list[dict]] = []
        for word in words:
            if runs and runs[-1][-1]["speaker"] == word["speaker"]:
                runs[-1].append(word)
            else:
                runs.append([word])
        for run in runs:
            piece = {k: v for k, v in seg.items() if k not in ("words", "text", "start", "end")}
            out.append({
                "start": run[0]["start"],
                "end": run[-1]["end"],
                "text": " ".join(w["word"] for w in run).strip(),
                "speaker": run[0]["speaker"],
                "words": run,
                **piece,
            })
    return out
